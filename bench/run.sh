#!/usr/bin/env bash
# Capsa against its peers on one file set (the python3 sample): pack (time, size) against
# `tar | zstd --long=27` and mksquashfs, unpack against `zstd -d | tar -x` and unsquashfs,
# verify against sha256sum, and a reproducibility spot check. See bench/README.md.
#
#   bash bench/run.sh                  # BENCH_RUNS=3, levels 3 9 12 15 19
#   BENCH_RUNS=5 BENCH_LEVELS="3 12 19" bash bench/run.sh
#
# Markdown tables go to stdout; progress to stderr; bench/out/results.{md,json} are written.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
START=$(date +%s.%N)

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
RUNS=${BENCH_RUNS:-3}
LEVELS=${BENCH_LEVELS:-"3 9 12 15 19"}
UNPACK_LEVEL=${BENCH_UNPACK_LEVEL:-12}   # the level of the inputs of the unpack/verify sections
RECIPE=${BENCH_RECIPE:-$ROOT/samples/python3/capsa.toml}
OUT=${BENCH_OUT:-$BENCH_DIR/out}
T=$(nproc)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$RUNS'"
for l in $LEVELS $UNPACK_LEVEL; do
    [[ $l =~ ^[0-9]+$ ]] && ((l >= 1 && l <= 22)) || die "zstd levels are 1..22, not '$l'"
done
[ -f "$RECIPE" ] || die "no recipe at $RECIPE"
command -v python3 >/dev/null || die "python3 is needed (it writes the report; the sample packs it too)"
command -v tar >/dev/null || die "tar is needed"

# ---------------------------------------------------------------- tools
have() { command -v "$1" >/dev/null 2>&1; }
missing=()
have zstd || missing+=(zstd)
{ have mksquashfs && have unsquashfs; } || missing+=(squashfs-tools)
have hyperfine || missing+=(hyperfine)
if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ] && have apt-get && [ "${BENCH_NO_INSTALL:-0}" != 1 ]; then
        log "installing ${missing[*]} with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2; then
            # One unavailable package fails the whole install: try them one by one.
            for p in "${missing[@]}"; do
                apt-get install -y -qq --no-install-recommends "$p" >&2 || log "warning: could not install $p"
            done
        fi
    else
        log "missing ${missing[*]} (not root, or BENCH_NO_INSTALL=1): skipping what needs them"
    fi
fi
HAVE_ZSTD=0 HAVE_SQFS=0 HAVE_HF=0
have zstd && HAVE_ZSTD=1
have mksquashfs && have unsquashfs && HAVE_SQFS=1
have hyperfine && [ "${BENCH_NO_HYPERFINE:-0}" != 1 ] && HAVE_HF=1
((HAVE_ZSTD)) || log "zstd not found: the tar|zstd peer is skipped"
((HAVE_SQFS)) || log "mksquashfs/unsquashfs not found: the squashfs peer is skipped"
((HAVE_HF)) || log "timing with a bash loop (date +%s.%N) instead of hyperfine"

# ---------------------------------------------------------------- capsa
if [ -n "${CAPSA:-}" ]; then
    CAPSA_BIN=$CAPSA
else
    export PATH="$HOME/.cargo/bin:/usr/local/cargo/bin:$PATH"
    have cargo || die "cargo not found (or set CAPSA=/path/to/capsa)"
    log "cargo build --release (waits if another build holds the lock)"
    (cd "$ROOT" && cargo build --release) >&2 ||
        die "cargo build --release failed (to bench an existing binary: CAPSA=path/to/capsa bash bench/run.sh)"
    CAPSA_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/x86_64-unknown-linux-gnu/release/capsa
fi
[ -x "$CAPSA_BIN" ] || die "no capsa binary at $CAPSA_BIN"
CAPSA_BIN=$(realpath "$CAPSA_BIN")

# ---------------------------------------------------------------- work dir
WORK=$(mktemp -d "${TMPDIR:-/tmp}/capsa-bench.XXXXXX")
cleanup() {
    chmod -R u+w "$WORK" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$WORK/out" "$WORK/hf" "$WORK/x"
REC=$WORK/records.tsv
META=$WORK/meta.tsv
: >"$REC"
: >"$META"

q() { printf '%q' "$1"; }
# A prepare command that removes a path (even a tree with read-only directories), then flushes
# dirty pages so that writeback of the previous run does not land in the next one's timing.
wipe() { printf 'rm -rf %s 2>/dev/null || { chmod -R u+w %s; rm -rf %s; }; sync' "$(q "$1")" "$(q "$1")" "$(q "$1")"; }
meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }
size_of() { stat -c %s "$1"; }
entries_of() { find "$1" -mindepth 1 | wc -l; }

# measure KEY PREPARE COMMAND: runs COMMAND (bash, pipefail) RUNS times, after WARMUP untimed
# runs (default 0), PREPARE before each run and outside the timing; sets MED MIN MAX (seconds).
measure() {
    local key=$1 prep=$2 cmd=$3 warm=${WARMUP:-0}
    if ((HAVE_HF)); then
        if ! hyperfine --warmup "$warm" --runs "$RUNS" --shell=bash --style=basic --export-json "$WORK/hf/$key.json" \
            --prepare "set -e; $prep" --command-name "$key" "set -o pipefail; $cmd" \
            >"$WORK/hf/$key.log" 2>&1; then
            cat "$WORK/hf/$key.log" >&2
            die "$key failed: $cmd"
        fi
        read -r MED MIN MAX < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(r["median"], r["min"], r["max"])' "$WORK/hf/$key.json")
    else
        local i t0 t1 times=()
        for ((i = -warm; i < RUNS; i++)); do
            bash -c "set -e; $prep" || die "$key: prepare failed: $prep"
            t0=$(date +%s.%N)
            if ! bash -c "set -o pipefail; $cmd" >/dev/null 2>"$WORK/hf/$key.err"; then
                cat "$WORK/hf/$key.err" >&2
                die "$key failed: $cmd"
            fi
            t1=$(date +%s.%N)
            ((i >= 0)) || continue
            times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')")
        done
        read -r MED MIN MAX < <(printf '%s\n' "${times[@]}" | sort -g | awk '
            { v[NR] = $1 }
            END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR] }')
    fi
}

# record SECTION TOOL LEVEL MED MIN MAX SIZE ENTRIES NOTE
record() {
    local IFS=$'\t'
    printf '%s\n' "$*" >>"$REC"
}

# ---------------------------------------------------------------- the file set
S=$WORK/stage
REF=$WORK/ref.capsa
log "packing the reference bundle (level $UNPACK_LEVEL) and extracting it as the shared file set"
"$CAPSA_BIN" pack "$RECIPE" -o "$REF" --level "$UNPACK_LEVEL" --threads "$T" >/dev/null
"$CAPSA_BIN" extract "$REF" "$S" >/dev/null
"$CAPSA_BIN" inspect "$REF" --json >"$WORK/inspect.json"
ENTRIES=$(entries_of "$S")
FILE_BYTES=$(find "$S" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
log "file set: $ENTRIES entries, $FILE_BYTES bytes of file content"

meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta host_cores "$T"
meta cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)"
meta kernel "$(uname -sr)"
meta os "$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-}")"
meta runs "$RUNS"
meta timer "$( ((HAVE_HF)) && hyperfine --version | sed -n 1p || echo 'bash loop, date +%s.%N')"
meta capsa "$("$CAPSA_BIN" --version | sed -n 1p)"
meta capsa_git "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
meta zstd "$( ((HAVE_ZSTD)) && zstd -q --version 2>&1 | sed -n 1p | sed 's/^v*/zstd /' || echo 'zstd not installed (skipped)')"
meta squashfs "$( ((HAVE_SQFS)) && mksquashfs -version 2>&1 | sed -n 1p || echo 'squashfs-tools not installed (skipped)')"
meta tar "$(tar --version | sed -n 1p)"
meta recipe "${RECIPE#"$ROOT"/}"
meta entries "$ENTRIES"
meta file_bytes "$FILE_BYTES"
meta unpack_level "$UNPACK_LEVEL"

# ---------------------------------------------------------------- 1. pack
zlevel() { (($1 > 19)) && printf -- '--ultra -%s' "$1" || printf -- '-%s' "$1"; }
pack_capsa() { printf '%s pack %s -o %s --level %s --threads %s >/dev/null' "$(q "$CAPSA_BIN")" "$(q "$RECIPE")" "$(q "$2")" "$1" "$T"; }
pack_tzst() { printf 'tar -C %s --sort=name -cf - . | zstd -q -T0 %s --long=27 -c >%s' "$(q "$S")" "$(zlevel "$1")" "$(q "$2")"; }
pack_sqfs() { printf 'mksquashfs %s %s %s -all-root -no-progress -noappend -quiet >/dev/null' "$(q "$S")" "$(q "$2")" "$1"; }

for L in $LEVELS; do
    o=$WORK/out/capsa-$L.capsa
    log "pack level $L: capsa"
    measure "pack-capsa-$L" "$(wipe "$o")" "$(pack_capsa "$L" "$o")"
    record pack capsa "$L" "$MED" "$MIN" "$MAX" "$(size_of "$o")" "" ""
    if ((HAVE_ZSTD)); then
        o=$WORK/out/tzst-$L.tar.zst
        log "pack level $L: tar | zstd"
        measure "pack-tzst-$L" "$(wipe "$o")" "$(pack_tzst "$L" "$o")"
        record pack "tar|zstd" "$L" "$MED" "$MIN" "$MAX" "$(size_of "$o")" "" ""
    fi
    if ((HAVE_SQFS)); then
        o=$WORK/out/sqfs-$L.sqfs
        log "pack level $L: mksquashfs zstd"
        measure "pack-sqfs-$L" "$(wipe "$o")" "$(pack_sqfs "-comp zstd -Xcompression-level $L" "$o")"
        record pack "mksquashfs zstd" "$L" "$MED" "$MIN" "$MAX" "$(size_of "$o")" "" ""
    fi
done
if ((HAVE_SQFS)); then
    for c in gzip xz; do
        o=$WORK/out/sqfs-$c.sqfs
        log "pack: mksquashfs $c (default level)"
        measure "pack-sqfs-$c" "$(wipe "$o")" "$(pack_sqfs "-comp $c" "$o")"
        record pack "mksquashfs $c" default "$MED" "$MIN" "$MAX" "$(size_of "$o")" "" ""
    done
fi

# ---------------------------------------------------------------- 2. unpack
# Sub-second measurements: one untimed warm-up run each (page cache, allocator, CPU clocks).
WARMUP=1
L=$UNPACK_LEVEL
B=$WORK/out/capsa-$L.capsa
Z=$WORK/out/tzst-$L.tar.zst
Q=$WORK/out/sqfs-$L.sqfs
# Inputs at the unpack level, when the pack section did not make them.
[ -f "$B" ] || cp "$REF" "$B"
if ((HAVE_ZSTD)) && [ ! -f "$Z" ]; then bash -c "set -o pipefail; $(pack_tzst "$L" "$Z")"; fi
if ((HAVE_SQFS)) && [ ! -f "$Q" ]; then bash -c "$(pack_sqfs "-comp zstd -Xcompression-level $L" "$Q")"; fi

D=$WORK/x/tree
check_tree() { # the unpacked tree must hold the same entries as the file set
    local n
    n=$(entries_of "$D")
    [ "$n" = "$ENTRIES" ] || die "$1 unpacked $n entries, the file set has $ENTRIES"
    echo "$n"
}
log "unpack: capsa extract"
measure unpack-capsa "$(wipe "$D")" "$(q "$CAPSA_BIN") extract $(q "$B") $(q "$D") >/dev/null"
n=$(check_tree capsa)
record unpack "capsa extract" "$L" "$MED" "$MIN" "$MAX" "$(size_of "$B")" "$n" "verifies sha256 of every byte"
if ((HAVE_ZSTD)); then
    untar="zstd -q -d --long=27 -c <$(q "$Z") | tar -x -C $(q "$D")"
    log "unpack: zstd -d | tar -x"
    measure unpack-tzst "$(wipe "$D"); mkdir -p $(q "$D")" "$untar"
    n=$(check_tree tar)
    record unpack "zstd -d | tar -x" "$L" "$MED" "$MIN" "$MAX" "$(size_of "$Z")" "$n" "zstd frame checksum only"
    log "unpack: zstd -d | tar -x, then sha256sum every file (reference)"
    measure unpack-tzst-sha "$(wipe "$D"); mkdir -p $(q "$D")" \
        "$untar && find $(q "$D") -type f -print0 | xargs -0 -r sha256sum >/dev/null"
    n=$(check_tree tar)
    record unpack "zstd -d | tar -x + sha256sum of every file" "$L" "$MED" "$MIN" "$MAX" "$(size_of "$Z")" "$n" "reference: hashes, compares with nothing"
fi
if ((HAVE_SQFS)); then
    log "unpack: unsquashfs"
    measure unpack-sqfs "$(wipe "$D")" "unsquashfs -q -n -d $(q "$D") $(q "$Q") >/dev/null"
    n=$(check_tree unsquashfs)
    record unpack "unsquashfs" "$L" "$MED" "$MIN" "$MAX" "$(size_of "$Q")" "$n" "no content digest"
fi

# ---------------------------------------------------------------- 3. verify
log "verify: capsa verify"
measure verify-capsa "true" "$(q "$CAPSA_BIN") verify $(q "$B") >/dev/null"
record verify "capsa verify" "$L" "$MED" "$MIN" "$MAX" "$(size_of "$B")" "" "layout, manifest, every digest, every layer decompressed and checked"
log "verify: sha256sum of the bundle (the floor)"
measure verify-sha256sum "true" "sha256sum $(q "$B") >/dev/null"
record verify "sha256sum bundle" "$L" "$MED" "$MIN" "$MAX" "$(size_of "$B")" "" "one digest of the file, nothing decompressed"
if ((HAVE_ZSTD)); then
    log "verify: zstd -t of the tar.zst (reference)"
    measure verify-zstd-t "true" "zstd -q -t --long=27 $(q "$Z")"
    record verify "zstd -t tar.zst" "$L" "$MED" "$MIN" "$MAX" "$(size_of "$Z")" "" "reference: decompresses, checks the xxhash64 frame checksum"
fi

# ---------------------------------------------------------------- 4. reproducibility
TA=1 TB=$T
((TB > 1)) || TB=4
log "reproducibility: pack level $UNPACK_LEVEL with --threads $TA and --threads $TB"
for th in "$TA" "$TB"; do
    t0=$(date +%s.%N)
    "$CAPSA_BIN" pack "$RECIPE" -o "$WORK/repro-$th.capsa" --level "$UNPACK_LEVEL" --threads "$th" >/dev/null
    t1=$(date +%s.%N)
    record repro "capsa pack --threads $th" "$UNPACK_LEVEL" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')" "" "" \
        "$(size_of "$WORK/repro-$th.capsa")" "" "$(sha256sum "$WORK/repro-$th.capsa" | cut -c1-16)"
done
if cmp -s "$WORK/repro-$TA.capsa" "$WORK/repro-$TB.capsa"; then SAME=yes; else SAME=no; fi
meta repro_identical "$SAME"
meta repro_threads "$TA $TB"
log "identical: $SAME"

# ---------------------------------------------------------------- report
meta loadavg "start $LOAD_START, end $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
meta total_seconds "$(awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
mkdir -p "$OUT"
python3 "$BENCH_DIR/report.py" "$REC" "$META" "$WORK/inspect.json" "$OUT/results.md" "$OUT/results.json"
log "wrote $OUT/results.md and $OUT/results.json"
[ "$SAME" = yes ] || die "packing with --threads $TA and $TB gave different bytes"
