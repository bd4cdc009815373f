#!/usr/bin/env bash
# Start-to-exit time of `true` with and without unrelated dirty data on the disk (see
# bench/README.md, "flush.sh"): before each "dirty" run, BENCH_DIRTY_MB (300) MB of
# /dev/urandom are written (no sync) to a file on the filesystem of $XDG_DATA_HOME; before each
# "clean" run, `sync`. capsa run APP-ID (persistent writable layer), capsa run --ephemeral, and
# bwrap with an overlay root whose writable layer is on that filesystem too; all six interleaved.
# Usage: bash bench/flush.sh     BENCH_RUNS=3 for a smoke run (default 15 rounds)
source "$(dirname "$0")/lib.sh"
bench_init flush
RUNS=$(runs_or 15)
MB=${BENCH_DIRTY_MB:-300}
[[ $MB =~ ^[1-9][0-9]*$ ]] || die "BENCH_DIRTY_MB must be a positive integer"
bench_pkgs bubblewrap coreutils
bench_capsa
bench_bwrap_overlay

user_dir "$WORK/apps" "$WORK/bw" "$WORK/bw/up" "$WORK/bw/wk"
true_recipe "$WORK/apps/true.toml" org.capsa.bench.True
quiet as_user "$CAPSA_BIN" pack "$WORK/apps/true.toml" -o "$WORK/apps/true.capsa"
quiet as_user "$CAPSA_BIN" install --yes "$WORK/apps/true.capsa"
quiet as_user "$CAPSA_BIN" run org.capsa.bench.True
app_tree "$WORK/apps/true.capsa" "$WORK/bw/tree"
[ "$(stat -c %d "$WORK/data")" = "$(stat -c %d "$WORK")" ] || die "the dirty file would not be on the filesystem of XDG_DATA_HOME"
log "dirty data: $MB MB at $WORK/dirty (filesystem $(df --output=source,fstype "$WORK" | tail -1 | tr -s ' '))"

export CAPSA_BIN BWRAP_OVL BWRAP_OVL_WHY RUNS MB
bench_py - <<'PY'
import os
from benchlib import Cmd, Report, rounds, med, ms, ms_spread, ratio

W = os.environ["BENCH_WORK"]
capsa = os.environ["CAPSA_BIN"]
mb = os.environ["MB"]
rep = Report("flush", f"Start-to-exit of `true` with {mb} MB of unrelated dirty data on the disk", int(os.environ["RUNS"]))
dirty_file = f"{W}/dirty"
clean = [f"rm -f {dirty_file}", "sync"]
dirty = ["sync", f"dd if=/dev/urandom of={dirty_file} bs=1M count={mb} status=none"]
after_dirty = f"rm -f {dirty_file}"  # drops what is still dirty: it is not written back later
if os.environ["BWRAP_OVL"]:
    bw = [os.environ["BWRAP_OVL"], "--unshare-all", "--die-with-parent", "--overlay-src", f"{W}/bw/tree",
          "--overlay", f"{W}/bw/up", f"{W}/bw/wk", "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
          "/usr/bin/true"]
    bw_name = "bwrap overlay (upper on the disk)"
else:
    bw = ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", f"{W}/bw/tree", "/", "--proc", "/proc",
          "--dev", "/dev", "--tmpfs", "/tmp", "/usr/bin/true"]
    bw_name = "bwrap --ro-bind"
tools = [("capsa run APP-ID", [capsa, "run", "org.capsa.bench.True"]),
         ("capsa run --ephemeral APP-ID", [capsa, "run", "--ephemeral", "org.capsa.bench.True"]),
         (bw_name, bw)]
pairs = []
cmds = []
for name, argv in tools:
    c = Cmd(f"{name}, clean", argv, prepare=clean)
    d = Cmd(f"{name}, {mb} MB dirty", argv, prepare=dirty, after=after_dirty)
    pairs.append((name, c, d))
    cmds += [c, d]
rounds(cmds, int(os.environ["RUNS"]), warmup=1, label="flush")
bwd = pairs[-1][2]
body = []
for name, c, d in pairs:
    body.append([name, ms(med(c.wall)), ms_spread(c.wall), ms(med(d.wall)), ms_spread(d.wall),
                 ratio(med(d.wall), med(c.wall)), ratio(med(d.wall), med(bwd.wall))])
rep.table(f"1. `true`, clean (after `sync`) and with {mb} MB dirty",
          ["command", "clean ms", "min–max", "dirty ms", "min–max", "dirty ÷ clean", f"dirty ÷ {bw_name} dirty"], body)
rep.record(cmds)
rep.note(f"before each dirty run (untimed): `sync; dd if=/dev/urandom of=$WORK/dirty bs=1M count={mb}` on the "
         "filesystem of $XDG_DATA_HOME, no sync; after it, the file is removed (its pages are dropped, not written); "
         "before each clean run: `sync`")
if not os.environ["BWRAP_OVL"]:
    rep.note(f"no bwrap with --overlay-src ({os.environ['BWRAP_OVL_WHY']}): bwrap binds the tree read-only")
for name, c, d in pairs[:2]:
    rep.target(f"{name}: dirty ÷ clean", med(d.wall) / med(c.wall), 1.1)
rep.write()
PY
