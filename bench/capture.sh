#!/usr/bin/env bash
# Issue 10's figures: what capture costs and what it brings.
#  1. The traced run against the same run untraced (wall time, interleaved rounds): python
#     importing three stdlib packages, perl loading POSIX and Encode, git log, dd (no path
#     syscalls), through `capsa __trace-exec` driven by the trace crate's timing test.
#  2. Each captured sample's bundle size against a binary-only recipe of the same program
#     (binaries = [program], base = false: what a user had before, which does not run) and
#     against a Flatpak-style full runtime: the Installed-Size of the program's package with
#     its whole Depends closure (base system included), from dpkg's database.
#   bash bench/capture.sh       # BENCH_NO_TIMING=1: sizes only; needs the samples' programs (see .ci/run); CAPSA=... to skip the build
# Output: bench/out/capture.md.
source "$(dirname "$0")/lib.sh"
bench_init capture
bench_capsa
C=$CAPSA_BIN
OUT=$ROOT/bench/out/capture.md
size_of() { stat -c %s "$1" | awk '{ printf "%.1f MB", $1 / 1e6 }'; }
mkdir -p "$ROOT/bench/out"
{
echo "## Traced run against untraced (wall, median of the trace crate's timing rounds)"
echo
echo '```'
if [ -z "${BENCH_NO_TIMING:-}" ]; then
    (cd "$ROOT" && cargo test -q --release -p trace --test programs -- --nocapture timing 2>&1 | grep '^timing')
fi
echo '```'
echo
echo "## Bundle sizes"
echo
echo "| sample | captured bundle | binary-only bundle (does not run) | full runtime estimate (package + Depends closure, installed) |"
echo "|---|---|---|---|"
for s in perl node curl git zenity; do
    r=$ROOT/samples/$s/capsa.toml
    prog=$(sed -n 's/^binaries = \["\([^"]*\)"\]/\1/p' "$r" | head -1)
    as_user "$C" pack "$r" -o "$WORK/$s.capsa" >/dev/null 2>&1 || { echo "| $s | pack failed | | |"; continue; }
    printf '[app]\nid = "org.capsa.bench.Bin"\nname = "b"\nversion = "0"\ncommand = ["%s"]\n[capture]\nbinaries = ["%s"]\nbase = false\n' "$prog" "$prog" >"$WORK/$s-bin.toml"
    as_user "$C" pack "$WORK/$s-bin.toml" -o "$WORK/$s-bin.capsa" >/dev/null 2>&1
    pkg=$(dpkg-query -S "$(readlink -f "$prog")" 2>/dev/null | head -1 | cut -d: -f1)
    [ -n "$pkg" ] || pkg=$(dpkg-query -S "$prog" 2>/dev/null | head -1 | cut -d: -f1)
    full=$(bench_py - "$pkg" <<'PY'
import subprocess, sys, re
def field(p, f):
    r = subprocess.run(["dpkg-query", "-W", "-f", "${" + f + "}", p], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else ""
seen, todo, kib = set(), [sys.argv[1]], 0
while todo:
    p = todo.pop()
    if p in seen: continue
    seen.add(p)
    size = field(p, "Installed-Size")
    if not size:
        prov = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Provides}\n"], capture_output=True, text=True).stdout
        alts = [l.split()[0] for l in prov.splitlines() if re.search(r"(^|[ ,])" + re.escape(p) + r"([ ,(]|$)", " ".join(l.split()[1:]))]
        todo.extend(alts[:1]); continue
    kib += int(size)
    deps = field(p, "Pre-Depends") + "," + field(p, "Depends")
    for d in deps.split(","):
        d = d.split("|")[0].strip().split(" ")[0].split(":")[0]
        if d: todo.append(d)
# Essential packages are in every runtime even when nothing depends on them.
ess = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Essential} ${Installed-Size}\n"], capture_output=True, text=True).stdout
for l in ess.splitlines():
    n, e, sz = (l.split() + ["", "", "0"])[:3]
    if e == "yes" and n not in seen and sz.isdigit(): kib += int(sz)
print(kib * 1024)
PY
)
    echo "| $s | $(size_of "$WORK/$s.capsa") | $(size_of "$WORK/$s-bin.capsa") | $((full / 1048576)) MiB installed ($pkg) |"
done
} | tee "$OUT"
