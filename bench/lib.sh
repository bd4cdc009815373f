# Shared set-up for the bench/*.sh scripts (sourced, never run). It gives each script:
#   bench_init NAME     strict mode, paths, log/die, the measuring user, a work dir it owns
#   bench_pkgs PKG...   apt-get install what is missing (as root; BENCH_NO_INSTALL=1 skips)
#   bench_capsa         build capsa (or take $CAPSA) and copy it into the work dir: $CAPSA_BIN
#   as_user CMD...      run a set-up command as the measuring user, with the measuring env
#   bench_bwrap_overlay a bwrap with --overlay-src (>= 0.9): $BWRAP_OVL, or empty with $BWRAP_OVL_WHY
#   gen_files DIR N     N small distinct files under DIR (1000 per subdirectory)
#   true_recipe FILE ID [DIR...]   a recipe: /usr/bin/true and its libc closure, plus DIRs
#   bench_py            run a Python report/driver heredoc with bench/benchlib.py importable
#
# The measuring user: $BENCH_USER if set; else `capsa-ci` when it exists and we are root; else
# the caller. Set-up runs as that user through `as_user`; the Python driver (bench/benchlib.py)
# runs as the caller (root: drop_caches, dd, sync) and starts each measured command as that
# user. Its environment (the same in as_user and benchlib.user_env): HOME, XDG_DATA_HOME,
# XDG_CACHE_HOME, XDG_CONFIG_HOME, XDG_STATE_HOME, TMPDIR all inside $WORK.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
export BENCH_OUT=${BENCH_OUT:-$BENCH_DIR/out}
BENCH_TOOLS=${BENCH_TOOLS:-/var/tmp/capsa-bench-tools}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
NPROC=$(nproc)
CLEANUP_HOOKS=()

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [ "$(id -u)" = 0 ]; }

# runs N: $BENCH_RUNS when set, else the script's default N.
runs_or() {
    local r=${BENCH_RUNS:-$1}
    [[ $r =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$r'"
    echo "$r"
}

bench_pkgs() {
    local p missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    if ! is_root || ! have apt-get || [ "${BENCH_NO_INSTALL:-0}" = 1 ]; then
        log "missing ${missing[*]} (not root, or BENCH_NO_INSTALL=1): rows that need them are skipped"
        return 0
    fi
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2; then
        for p in "${missing[@]}"; do # one unavailable package fails the whole install
            apt-get install -y -qq --no-install-recommends "$p" >&2 || log "warning: could not install $p"
        done
    fi
}

bench_user() {
    RUN_USER=${BENCH_USER:-}
    if [ -z "$RUN_USER" ]; then
        if is_root && id capsa-ci >/dev/null 2>&1; then RUN_USER=capsa-ci; else RUN_USER=$(id -un); fi
    fi
    id "$RUN_USER" >/dev/null 2>&1 || die "BENCH_USER=$RUN_USER: no such user"
    RUN_UID=$(id -u "$RUN_USER")
    RUN_GID=$(id -g "$RUN_USER")
    if [ "$RUN_UID" != "$(id -u)" ] && ! is_root; then
        die "measuring as $RUN_USER needs root (or run this script as $RUN_USER)"
    fi
    [ "$RUN_UID" != 0 ] || log "warning: measuring as root (capsa refuses nothing, but unprivileged users are what matters): set BENCH_USER"
    export BENCH_RUN_USER=$RUN_USER BENCH_RUN_UID=$RUN_UID BENCH_RUN_GID=$RUN_GID
}

bench_cleanup() {
    local h
    for h in "${CLEANUP_HOOKS[@]}"; do eval "$h" || true; done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        log "kept $WORK (BENCH_KEEP=1)"
        return
    fi
    log "removing $WORK"
    is_root || chmod -R u+rwx "$WORK" 2>/dev/null || true # capsa's trees have read-only directories
    rm -rf "$WORK" 2>/dev/null || log "warning: could not remove all of $WORK"
}

bench_init() {
    BENCH_NAME=$1
    bench_user
    mkdir -p "${BENCH_TMP:-/var/tmp}"
    WORK=$(mktemp -d "${BENCH_TMP:-/var/tmp}/capsa-bench-$BENCH_NAME.XXXXXX")
    chmod 755 "$WORK"
    mkdir -p "$WORK"/{home,data,cache,config,state,tmp,bin}
    [ "$RUN_UID" = "$(id -u)" ] || chown "$RUN_UID:$RUN_GID" "$WORK" "$WORK"/{home,data,cache,config,state,tmp}
    export BENCH_WORK=$WORK
    trap bench_cleanup EXIT
    bench_pkgs gcc libc6-dev
    gcc -O2 -static -o "$WORK/bin/bench-spawn" "$BENCH_DIR/spawn.c" 2>/dev/null ||
        gcc -O2 -o "$WORK/bin/bench-spawn" "$BENCH_DIR/spawn.c" || die "cannot compile bench/spawn.c (gcc)"
    export BENCH_SPAWN=$WORK/bin/bench-spawn
    trap 'exit 130' INT
    trap 'exit 143' TERM
    log "$BENCH_NAME: work dir $WORK, measuring as $RUN_USER (uid $RUN_UID)"
}

# A directory the measuring user owns (work files of set-up steps).
user_dir() {
    mkdir -p "$@"
    [ "$RUN_UID" = "$(id -u)" ] || chown "$RUN_UID:$RUN_GID" "$@"
}

user_env() { # the measuring environment for root $1 (default $WORK), as env(1) arguments
    local w=${1:-$WORK}
    printf '%s\n' HOME="$w/home" XDG_DATA_HOME="$w/data" XDG_CACHE_HOME="$w/cache" \
        XDG_CONFIG_HOME="$w/config" XDG_STATE_HOME="$w/state" TMPDIR="$w/tmp" \
        PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 USER="$RUN_USER" LOGNAME="$RUN_USER"
}

# as_user [VAR=VALUE...] CMD...: CMD as the measuring user with the measuring environment
# (VAR=VALUE override it, e.g. XDG_DATA_HOME=...).
as_user() {
    local envs
    mapfile -t envs < <(user_env)
    while [[ ${1:-} == *=* ]]; do
        envs+=("$1")
        shift
    done
    if [ "$RUN_UID" = "$(id -u)" ]; then
        (cd "$WORK" && env -i "${envs[@]}" "$@")
    else
        (cd "$WORK" && setpriv --reuid="$RUN_UID" --regid="$RUN_GID" --clear-groups env -i "${envs[@]}" "$@")
    fi
}

bench_capsa() {
    local bin
    if [ -n "${CAPSA:-}" ]; then
        bin=$CAPSA
    else
        export PATH="$HOME/.cargo/bin:/usr/local/cargo/bin:$PATH"
        have cargo || die "cargo not found (or set CAPSA=/path/to/capsa)"
        log "cargo build --release --locked (waits if another build holds the lock)"
        (cd "$ROOT" && cargo build --release --locked --quiet) >&2 || die "cargo build --release --locked failed"
        bin=${CARGO_TARGET_DIR:-$ROOT/target}/x86_64-unknown-linux-gnu/release/capsa
    fi
    [ -x "$bin" ] || die "no capsa binary at $bin"
    # A copy: readable by the measuring user wherever the tree is, and not replaced by a
    # rebuild during the run.
    cp "$bin" "$WORK/bin/capsa"
    chmod 755 "$WORK/bin/capsa"
    CAPSA_BIN=$WORK/bin/capsa
    BENCH_CAPSA_VERSION=$("$CAPSA_BIN" --version | sed -n '1s/^capsa //p')
    BENCH_CAPSA_GIT=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
    export BENCH_CAPSA_VERSION BENCH_CAPSA_GIT
}

# bwrap >= 0.9 has --overlay-src/--overlay/--tmp-overlay. Debian 12 ships 0.8, so, as root, we
# build Debian 13's bubblewrap from its source package (apt-get source with a private sources
# list: the system's apt configuration is not touched) into $BENCH_TOOLS, once.
bench_bwrap_overlay() {
    bench_bwrap_overlay_find
    BWRAP_OVL_VERSION=
    [ -z "$BWRAP_OVL" ] || BWRAP_OVL_VERSION=$("$BWRAP_OVL" --version)
    export BWRAP_OVL BWRAP_OVL_WHY BWRAP_OVL_VERSION
}
bench_bwrap_overlay_find() {
    BWRAP_OVL= BWRAP_OVL_WHY=
    if have bwrap && bwrap --help 2>&1 | grep -q -- --overlay-src; then
        BWRAP_OVL=$(command -v bwrap)
        return
    fi
    local b
    for b in "$BENCH_TOOLS"/bubblewrap-*/bwrap; do
        [ -x "$b" ] && "$b" --help 2>&1 | grep -q -- --overlay-src && BWRAP_OVL=$b
    done
    [ -n "$BWRAP_OVL" ] && return
    if ! is_root || [ "${BENCH_NO_INSTALL:-0}" = 1 ]; then
        BWRAP_OVL_WHY="bwrap $(bwrap --version 2>/dev/null | cut -d' ' -f2) has no --overlay-src and building a newer one needs root"
        return
    fi
    log "bwrap $(bwrap --version 2>/dev/null | cut -d' ' -f2) has no --overlay-src: building Debian 13's bubblewrap into $BENCH_TOOLS"
    bench_pkgs meson ninja-build libcap-dev pkg-config gcc xz-utils
    local d=$BENCH_TOOLS/apt src tarball
    mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$d/src"
    chmod 755 "$BENCH_TOOLS"
    printf 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main\n' >"$d/sources.list"
    local o=(-o "Dir::Etc::SourceList=$d/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$d/lists" -o "Dir::Cache=$d/cache" -o APT::Sandbox::User=root)
    # (The mirror may lack the .dsc: apt-get then fails after fetching the tarballs, which is enough.)
    (cd "$d/src" && apt-get "${o[@]}" update -qq && apt-get "${o[@]}" source --download-only bubblewrap) >"$d/fetch.log" 2>&1 || true
    tarball=$(ls "$d/src"/bubblewrap_*.orig.tar.xz 2>/dev/null | sort -V | tail -1)
    if [ -z "$tarball" ]; then
        BWRAP_OVL_WHY="could not fetch Debian 13's bubblewrap source"
        return
    fi
    src=$d/src/build && rm -rf "$src" && mkdir -p "$src" && tar -C "$src" -xf "$tarball"
    src=$(ls -d "$src"/bubblewrap-*)
    if (cd "$src" && meson setup _b --buildtype=release -Dman=disabled -Dselinux=disabled -Dtests=false \
        -Dbash_completion=disabled -Dzsh_completion=disabled && ninja -C _b) >"$d/build.log" 2>&1; then
        b=$BENCH_TOOLS/$(basename "$src")
        mkdir -p "$b" && cp "$src/_b/bwrap" "$b/bwrap" && chmod 755 "$b" "$b/bwrap"
        BWRAP_OVL=$b/bwrap
        log "built $("$BWRAP_OVL" --version) at $BWRAP_OVL"
    else
        BWRAP_OVL_WHY="building bubblewrap from $(basename "$tarball") failed (see $d/build.log)"
    fi
}

# gen_files DIR N: N files of 40-80 distinct bytes, 1000 per subdirectory.
gen_files() {
    "$PY" - "$1" "$2" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    sub = os.path.join(d, f"d{i // 1000:03d}")
    if i % 1000 == 0:
        os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"f{i:06d}.txt"), "w") as f:
        f.write(f"bench file {i} " + "x" * (i % 41) + "\n")
PY
}

# true_recipe FILE ID [DIR...]: /usr/bin/true with its closure (28 entries), plus DIRs as paths.
true_recipe() {
    local f=$1 id=$2 paths="" p
    shift 2
    for p in "$@"; do paths+="\"$p\", "; done
    cat >"$f" <<EOF
[app]
id = "$id"
name = "Bench $id"
version = "1.0"
command = ["/usr/bin/true"]

[capture]
binaries = ["/usr/bin/true"]
paths = [${paths%, }]

[permissions]
network = false
EOF
}

entries_of_bundle() { # total entries of all layers
    "$CAPSA_BIN" inspect --json "$1" | "$PY" -c 'import json,sys; print(sum(l["entries"] for l in json.load(sys.stdin)["manifest"]["layers"]))'
}

# quiet CMD...: CMD's output goes to $WORK/setup.log; on failure its tail is shown and we stop.
quiet() {
    if ! "$@" >>"$WORK/setup.log" 2>&1; then
        tail -20 "$WORK/setup.log" >&2
        die "failed: $*"
    fi
}

# app_tree BUNDLE DIR: the bundle's tree (as the measuring user) with empty /proc, /dev and /tmp
# mount points, for bwrap.
app_tree() {
    quiet as_user "$CAPSA_BIN" extract "$1" "$2"
    as_user mkdir -p "$2/proc" "$2/dev" "$2/tmp"
}

bench_py() { PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=$BENCH_DIR${PYTHONPATH:+:$PYTHONPATH} "$PY" "$@"; }
