#!/usr/bin/env bash
# Start-up, install and disk benchmarks, against the peers in the same run:
#   1. start-up of a tiny C program and of `python3 -c pass`: host, bwrap, firejail, capsa
#      (bundle file, installed app, --ephemeral);
#   2. install of the python3 sample vs unpacking the same tree with `zstd -d | tar x`;
#   3. disk used by two installed apps sharing the libc layer vs two separate copies.
# Usage: bash bench/startup.sh   (BENCH_RUNS=N for more runs; as root it installs what is missing)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
runs=${BENCH_RUNS:-20}
if [ "$(id -u)" = 0 ]; then
    for p in hyperfine bubblewrap firejail zstd gcc; do
        dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p"; }
    done
fi
cargo build --release --locked --quiet
capsa=$PWD/target/x86_64-unknown-linux-gnu/release/capsa   # static: see .cargo/config.toml
work=$(mktemp -d /var/tmp/capsa-startup.XXXXXX)
cleanup() { chmod -R u+rwx "$work" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export XDG_DATA_HOME=$work/data XDG_CACHE_HOME=$work/cache XDG_CONFIG_HOME=$work/config
mkdir -p "$work/hello"
cp samples/hello/{hello.c,capsa.toml,build.sh} "$work/hello/"
sh "$work/hello/build.sh"
hello=$work/hello/build/capsa-hello
"$capsa" pack "$work/hello/capsa.toml" -o "$work/hello.capsa" >/dev/null
"$capsa" pack samples/python3/capsa.toml -o "$work/python3.capsa" >/dev/null
"$capsa" install --yes "$work/hello.capsa" >/dev/null
"$capsa" install --yes "$work/python3.capsa" >/dev/null
"$capsa" run "$work/hello.capsa" >/dev/null   # fill the layer cache
"$capsa" run "$work/python3.capsa" -- -c pass

hf() { hyperfine --warmup 3 --runs "$runs" --style none --export-json "$work/$1.json" -n "$1" "$2" >/dev/null 2>&1 || echo "{}" > "$work/$1.json"; }
bw="bwrap --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --unshare-all --die-with-parent"
fj="firejail --quiet --noprofile --private-tmp"
echo "## Start-up (median of $runs runs, warm caches)"
echo
echo "| program | host | bwrap | firejail | capsa run BUNDLE | capsa run APP-ID | capsa run --ephemeral |"
echo "|---|---|---|---|---|---|---|"
row() { # name, host command, capsa args
    hf "$1-host" "$2"
    hf "$1-bwrap" "$bw $2"
    if firejail --version >/dev/null 2>&1; then hf "$1-firejail" "$fj $2"; else echo "{}" > "$work/$1-firejail.json"; fi
    hf "$1-capsa" "$capsa run $3"
    hf "$1-capsa-id" "$capsa run $4"
    hf "$1-capsa-eph" "$capsa run --ephemeral $3"
    python3 - "$work" "$1" <<'PY'
import json, sys
w, n = sys.argv[1], sys.argv[2]
def med(k):
    try:
        return "%.1f ms" % (json.load(open(f"{w}/{n}-{k}.json"))["results"][0]["median"] * 1000)
    except Exception:
        return "n/a"
print(f"| {n} | " + " | ".join(med(k) for k in ["host", "bwrap", "firejail", "capsa", "capsa-id", "capsa-eph"]) + " |")
PY
}
row "hello (C)" "$hello" "$work/hello.capsa" "org.capsa.Hello"
row "python3 -c pass" "/usr/bin/python3.11 -c pass" "$work/python3.capsa -- -c pass" "org.python.Python3 -- -c pass"

echo
echo "## Install (python3 sample, $(( runs < 5 ? runs : 5 )) runs)"
echo
tree=$work/tree
"$capsa" extract "$work/python3.capsa" "$tree" >/dev/null
tar -C "$tree" -cf - . | zstd -q -12 --long=27 -T0 -o "$work/tree.tar.zst"
n=$(( runs < 5 ? runs : 5 ))
hyperfine --runs "$n" --style none --export-json "$work/install.json" \
    --prepare "chmod -R u+rwx $work/store 2>/dev/null; rm -rf $work/store" \
    -n "capsa install (verifies every byte, unpacks, exports)" "XDG_DATA_HOME=$work/store $capsa install --yes $work/python3.capsa" \
    --prepare "rm -rf $work/untar; mkdir $work/untar" \
    -n "zstd -d | tar -x (same tree, level 12)" "zstd -dc --long=27 $work/tree.tar.zst | tar -C $work/untar -xf -" >/dev/null 2>&1
python3 - "$work/install.json" <<'PY'
import json, sys
print("| method | median s |\n|---|---|")
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"| {r['command']} | {r['median']:.3f} |")
PY

echo
echo "## Disk: two apps sharing the libc layer"
echo
store=$(du -sk "$XDG_DATA_HOME/capsa/layers" | cut -f1)
mkdir -p "$work/sep"
"$capsa" extract "$work/hello.capsa" "$work/sep/hello" >/dev/null
"$capsa" extract "$work/python3.capsa" "$work/sep/python3" >/dev/null
sep=$(du -sk "$work/sep" | cut -f1)
echo "| layout | KiB |"
echo "|---|---|"
echo "| capsa store, python3 + hello (libc layer stored once) | $store |"
echo "| two separate copies | $sep |"
