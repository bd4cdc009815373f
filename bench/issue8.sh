#!/usr/bin/env bash
# Every table of issue 8, one script after the other (start, scale, store, flush, cold, pack),
# then the targets of all of them in one table (bench/summary.py). The scripts' own knobs apply
# (BENCH_RUNS, BENCH_USER, ...); BENCH_ONLY="start flush" runs a subset.
# Usage: bash bench/issue8.sh     BENCH_RUNS=3 bash bench/issue8.sh for a smoke run
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
OUT=${BENCH_OUT:-$BENCH_DIR/out}
mkdir -p "$OUT"
status=0
for s in ${BENCH_ONLY:-start scale store flush cold pack}; do
    [ -f "$BENCH_DIR/$s.sh" ] || { echo "bench: no script $s.sh" >&2; exit 2; }
    printf '[bench %s] === %s.sh ===\n' "$(date +%H:%M:%S)" "$s" >&2
    bash "$BENCH_DIR/$s.sh" || { status=1; printf '[bench] %s.sh failed\n' "$s" >&2; }
    echo
done
/usr/bin/python3 -B "$BENCH_DIR/summary.py" "$OUT"
exit $status
