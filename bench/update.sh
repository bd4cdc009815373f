#!/usr/bin/env bash
# What an update downloads: capsa's repository against the whole bundle, ostree (what
# `flatpak update` pulls: archive objects, and a static delta) and zsync, for the same change
# of the python3 sample, all served by one nginx whose access log counts the bytes.
#
# Three releases of the python3 sample with 14 extra real stdlib modules (1 % of its files)
# in a directory the recipe captures: v1; v2 changes one of them; v3 changes all 14.
#   bash bench/update.sh            # as root or a user; needs nginx-light, ostree, zsync
# Output: bench/out/update.md. Knobs: CAPSA=/path/to/capsa (skip the build), BENCH_KEEP=1.
source "$(dirname "$0")/lib.sh"
bench_init update
bench_pkgs nginx-light ostree zsync python3.11
bench_capsa
C=$CAPSA_BIN
NGINX=/usr/sbin/nginx
[ -x $NGINX ] || die "nginx is missing (apt-get install nginx-light)"

W=$WORK/u
mkdir -p "$W"/{www,markers,client,ostree-src,ostree-client,zs}
as_env() { env HOME="$WORK/home" XDG_DATA_HOME="$WORK/data" XDG_CACHE_HOME="$WORK/cache" \
    XDG_CONFIG_HOME="$WORK/config" XDG_STATE_HOME="$WORK/state" TMPDIR="$WORK/tmp" "$@"; }
as_env "$C" keygen "$W/repo" >/dev/null
as_env "$C" keygen "$W/me" >/dev/null

mapfile -t SOURCES < <(find /usr/lib/python3.11 -maxdepth 1 -name '*.py' -size +20k | sort | head -14)
[ ${#SOURCES[@]} = 14 ] || die "fewer than 14 stdlib modules over 20 kB"

# pack VERSION CHANGED: the sample with CHANGED of the 14 modules edited.
pack() {
    local v=$1 n=$2 i=0 s
    for s in "${SOURCES[@]}"; do
        cp "$s" "$W/markers/m$i.py"
        [ "$i" -lt "$n" ] && printf '\n# edited for %s\n' "$v" >>"$W/markers/m$i.py"
        i=$((i + 1))
    done
    sed -e "s|^version = .*|version = \"$v\"|" \
        -e "s|^paths = \[\"/usr/bin/python3\", \"/usr/lib/python3.11\"\]|paths = [\"/usr/bin/python3\", \"/usr/lib/python3.11\", \"$W/markers\"]|" \
        "$ROOT/samples/python3/capsa.toml" >"$W/py-$v.toml"
    as_env "$C" pack "$W/py-$v.toml" -o "$W/py-$v.capsa" --sign "$W/me.key" >/dev/null 2>&1
    rm -rf "$W/tree-$v"
    as_env "$C" extract "$W/py-$v.capsa" "$W/tree-$v" >/dev/null
}
log "packing three releases"
pack 1 0
pack 2 1
pack 3 14

# nginx on a free loopback port, serving $W: the capsa repo, the ostree repo, the zsync files.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$W/ng"
cat >"$W/ng/nginx.conf" <<EOF
daemon off; worker_processes 1; pid $W/ng/nginx.pid; error_log $W/ng/error.log;
events { worker_connections 64; }
http { log_format b '\$request_uri \$status \$body_bytes_sent'; access_log $W/ng/access.log b;
  client_body_temp_path $W/ng/b; proxy_temp_path $W/ng/p; fastcgi_temp_path $W/ng/f;
  uwsgi_temp_path $W/ng/u; scgi_temp_path $W/ng/s; default_type application/octet-stream;
  server { listen 127.0.0.1:$PORT; root $W; } }
EOF
$NGINX -p "$W/ng" -c "$W/ng/nginx.conf" 2>/dev/null &
NG=$!
CLEANUP_HOOKS+=("kill $NG")
for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
URL=http://127.0.0.1:$PORT
logged() { wc -l <"$W/ng/access.log"; }
bytes_since() { tail -n +"$(($1 + 1))" "$W/ng/access.log" | awk '{s += $3} END {print s + 0}'; }
requests_since() { tail -n +"$(($1 + 1))" "$W/ng/access.log" | wc -l; }
now() { date +%s.%N; }
ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 |"); }
full() { stat -c %s "$W/py-$1.capsa"; }
pct() { python3 -c "print(f'{100 * $1 / $2:.2f} %')"; }

# --- capsa
log "capsa: publish, install, two updates"
as_env "$C" repo init "$W/www" --key "$W/repo.key" >/dev/null
as_env "$C" repo add "$W/www" "$W/py-1.capsa" >/dev/null 2>&1
as_env "$C" remote add bench "$URL/www" --key "$W/repo.pub" >/dev/null
n=$(logged); t=$(now)
as_env "$C" install --yes org.python.Python3 >/dev/null 2>&1
t=$(python3 -c "print(f'{$(now) - $t:.2f}')")
b=$(bytes_since "$n")
row "capsa install (v1)" "$b" "$(pct "$b" "$(full 1)")" "$(requests_since "$n")" "$t"
for v in 2 3; do
    as_env "$C" repo add "$W/www" "$W/py-$v.capsa" >/dev/null 2>&1
    n=$(logged); t=$(now)
    as_env "$C" update --yes >/dev/null 2>&1
    t=$(python3 -c "print(f'{$(now) - $t:.2f}')")
    b=$(bytes_since "$n")
    what=$([ $v = 2 ] && echo "one file" || echo "1 % of files")
    row "capsa update ($what)" "$b" "$(pct "$b" "$(full $v)")" "$(requests_since "$n")" "$t"
done
row "whole bundle (v2 / v3)" "$(full 2) / $(full 3)" "100 %" "1" "–"

# --- ostree, as flatpak serves apps: an archive repo, commits of the same trees
log "ostree: commits, static deltas, pulls"
OS=$W/ostree-src
ostree init --repo="$OS" --mode=archive >/dev/null
for v in 1 2 3; do
    ostree commit --repo="$OS" --branch=app --subject="v$v" --tree=dir="$W/tree-$v" >/dev/null
done
OC=$W/ostree-client
ostree init --repo="$OC" --mode=bare-user >/dev/null
ostree remote add --repo="$OC" --no-gpg-verify src "$URL/ostree-src" >/dev/null
n=$(logged)
ostree pull --repo="$OC" --disable-static-deltas src app@"$(ostree rev-parse --repo="$OS" app^^)" >/dev/null
row "ostree pull v1 (objects)" "$(bytes_since "$n")" "$(pct "$(bytes_since "$n")" "$(full 1)")" "$(requests_since "$n")" "–"
for v in 2 3; do
    rev=$(ostree rev-parse --repo="$OS" "app$([ $v = 2 ] && echo '^' || echo '')")
    n=$(logged)
    ostree pull --repo="$OC" --disable-static-deltas src app@"$rev" >/dev/null
    b=$(bytes_since "$n")
    row "ostree pull v$v (objects, as flatpak without deltas)" "$b" "$(pct "$b" "$(full $v)")" "$(requests_since "$n")" "–"
done
# Static deltas between consecutive commits, what Flathub serves: a fresh client at v2 pulls v3.
ostree static-delta generate --repo="$OS" --from="$(ostree rev-parse --repo="$OS" app^)" --to="$(ostree rev-parse --repo="$OS" app)" >/dev/null 2>&1
ostree summary --repo="$OS" -u >/dev/null
OD=$W/ostree-delta
ostree init --repo="$OD" --mode=bare-user >/dev/null
ostree remote add --repo="$OD" --no-gpg-verify src "$URL/ostree-src" >/dev/null
ostree pull --repo="$OD" --disable-static-deltas src app@"$(ostree rev-parse --repo="$OS" app^)" >/dev/null
n=$(logged)
ostree pull --repo="$OD" src app >/dev/null
b=$(bytes_since "$n")
row "ostree pull v3 from v2 (static delta)" "$b" "$(pct "$b" "$(full 3)")" "$(requests_since "$n")" "–"

# --- zsync of the bundle file: the client has v1's (or v2's) .capsa
log "zsync"
for v in 2 3; do
    cp "$W/py-$v.capsa" "$W/zs/py-$v.capsa"
    (cd "$W/zs" && zsyncmake -u "py-$v.capsa" -o "py-$v.capsa.zsync" "py-$v.capsa" >/dev/null 2>&1)
    prev=$((v - 1))
    n=$(logged)
    (cd "$WORK/tmp" && rm -f "py-$v.capsa" && zsync -q -i "$W/py-$prev.capsa" -o "py-$v.capsa" "$URL/zs/py-$v.capsa.zsync" >/dev/null 2>&1)
    cmp -s "$WORK/tmp/py-$v.capsa" "$W/py-$v.capsa" || log "warning: zsync output differs"
    b=$(bytes_since "$n")
    row "zsync v$prev → v$v (.capsa)" "$b" "$(pct "$b" "$(full $v)")" "$(requests_since "$n")" "–"
done

mkdir -p "$BENCH_OUT"
{
    echo "## Update downloads: capsa against ostree (flatpak) and zsync"
    echo
    echo "$(date -u +%FT%TZ) · $(uname -sr) · $NPROC cores · capsa $("$C" --version | cut -d' ' -f2) (git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?))"
    echo
    echo "python3 sample with 14 extra stdlib modules; v2 changes one of them, v3 all 14 (1 % of the app's files). Bytes are nginx's body bytes, metadata included."
    echo
    echo "| what | bytes downloaded | of the full bundle | requests | wall s |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} | tee "$BENCH_OUT/update.md"
