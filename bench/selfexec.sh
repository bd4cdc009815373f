#!/usr/bin/env bash
# capsa as one static file (issue 11), and self-executable bundles:
#   1. sizes: the release capsa (static-pie, .cargo/config.toml), the same release profile
#      linked dynamically, the python3 sample as a bundle and as a self-executable file, and
#      the self-executable file's stub (its size minus the bundle's); AppImage's static
#      runtime, about 1 MB, for scale;
#   2. start-up (median of N runs, warm caches): `capsa --version`, and `python3 -c pass` by
#      `capsa run BUNDLE` with the static and the dynamic capsa, and by the self-executable
#      file itself, with ratios.
# Usage: bash bench/selfexec.sh   (BENCH_RUNS=N for more runs; as root it installs hyperfine)
# Without `capsa pack --self-exec` the self-executable rows say n/a.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
runs=${BENCH_RUNS:-20}
triple=x86_64-unknown-linux-gnu
if [ "$(id -u)" = 0 ]; then
    for p in hyperfine file; do
        dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p"; }
    done
fi
echo "building the static and the dynamic release capsa" >&2
cargo build --release --locked --quiet
static=$PWD/target/$triple/release/capsa
# The same profile, dynamically linked: RUSTFLAGS replaces the config's +crt-static; its own
# target dir, so the two builds never overwrite each other.
RUSTFLAGS="-C target-feature=-crt-static" cargo build --release --locked --quiet --target-dir target/dynamic
dynamic=$PWD/target/dynamic/$triple/release/capsa
file -L "$static" | grep -Eq 'static-pie linked|statically linked' || { echo "$static is not static" >&2; exit 1; }
file -L "$dynamic" | grep -q 'interpreter' || { echo "$dynamic is not dynamic" >&2; exit 1; }

work=$(mktemp -d /var/tmp/capsa-selfexec.XXXXXX)
cleanup() { chmod -R u+rwx "$work" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export XDG_DATA_HOME=$work/data XDG_CACHE_HOME=$work/cache XDG_CONFIG_HOME=$work/config XDG_STATE_HOME=$work/state
bundle=$work/python3.capsa
selfexec=$work/python3
"$static" pack samples/python3/capsa.toml -o "$bundle" >/dev/null 2>&1
if "$static" pack --help | grep -q -- '--self-exec'; then
    "$static" pack --self-exec -o "$selfexec" samples/python3/capsa.toml >/dev/null 2>&1
    chmod +x "$selfexec"
else
    selfexec=
    echo "capsa pack has no --self-exec: its rows are n/a" >&2
fi
# Warm every cache once (the layer cache is shared by all three).
"$static" run "$bundle" -- -c pass
"$dynamic" run "$bundle" -- -c pass
[ -z "$selfexec" ] || "$selfexec" -c pass

size() { stat -c %s "$1"; }
mib() { python3 -c "import sys; print('%.2f' % (int(sys.argv[1]) / 2**20))" "$1"; }
echo "## Sizes"
echo
echo "| file | bytes | MiB |"
echo "|---|---|---|"
row_size() { echo "| $1 | $2 | $(mib "$2") |"; }
row_size "capsa, release, static-pie (stripped, fat LTO)" "$(size "$static")"
row_size "capsa, release, dynamically linked (same profile)" "$(size "$dynamic")"
row_size "python3 sample, bundle" "$(size "$bundle")"
if [ -n "$selfexec" ]; then
    row_size "python3 sample, self-executable" "$(size "$selfexec")"
    row_size "its stub (self-executable − bundle)" "$(( $(size "$selfexec") - $(size "$bundle") ))"
else
    echo "| python3 sample, self-executable | n/a | n/a |"
    echo "| its stub (self-executable − bundle) | n/a | n/a |"
fi
echo "| AppImage's static type-2 runtime (for scale, not measured) | ~1000000 | ~1 |"

hf() { hyperfine --warmup 3 --runs "$runs" --style none --export-json "$work/$1.json" -n "$1" "$2" >/dev/null 2>&1 || echo "{}" > "$work/$1.json"; }
hf version-static "$static --version"
hf version-dynamic "$dynamic --version"
hf run-static "$static run $bundle -- -c pass"
hf run-dynamic "$dynamic run $bundle -- -c pass"
if [ -n "$selfexec" ]; then hf selfexec "$selfexec -c pass"; else echo "{}" > "$work/selfexec.json"; fi

echo
echo "## Start-up (median of $runs runs, warm caches)"
echo
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
def med(k):
    try:
        return json.load(open(f"{w}/{k}.json"))["results"][0]["median"]
    except Exception:
        return None
def ms(v):
    return "n/a" if v is None else "%.1f ms" % (v * 1000)
def ratio(a, b):
    return "n/a" if a is None or b is None else "%.2f" % (a / b)
print("| command | static capsa | dynamic capsa | static ÷ dynamic |")
print("|---|---|---|---|")
for name, k in [("capsa --version", "version"), ("capsa run python3.capsa -- -c pass", "run")]:
    s, d = med(f"{k}-static"), med(f"{k}-dynamic")
    print(f"| {name} | {ms(s)} | {ms(d)} | {ratio(s, d)} |")
se, rs = med("selfexec"), med("run-static")
print()
print("| command | median | ÷ static `capsa run python3.capsa` |")
print("|---|---|---|")
print(f"| ./python3 -c pass (self-executable) | {ms(se)} | {ratio(se, rs)} |")
PY
