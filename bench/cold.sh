#!/usr/bin/env bash
# First run of python3 with cold caches (see bench/README.md, "cold.sh"): before each run,
# `sync; echo 3 > /proc/sys/vm/drop_caches` (root only), and for the bundle file the layer cache
# ($XDG_CACHE_HOME/capsa) is removed too. Against squashfuse: the same tree in a squashfs image
# (mksquashfs -comp zstd, once), mounted and run under bwrap --ro-bind MOUNT / per round.
# Usage: bash bench/cold.sh      BENCH_RUNS=3 for a smoke run (default 10 rounds); needs root
source "$(dirname "$0")/lib.sh"
bench_init cold
RUNS=$(runs_or 10)
PY_CODE=${BENCH_PY_CODE:-import json, email.parser, http.client}
export RUNS PY_CODE
if ! is_root || [ ! -w /proc/sys/vm/drop_caches ]; then
    log "dropping the page cache needs root: cold.sh measures nothing"
    bench_py - <<'PY'
import os
from benchlib import Report
rep = Report("cold", "First run with cold caches", int(os.environ["RUNS"]))
rep.note("skipped: `echo 3 > /proc/sys/vm/drop_caches` needs root (run bench/cold.sh as root; it measures as BENCH_USER)")
rep.target("first cold run, capsa BUNDLE ÷ squashfuse", None, 1.0, note="not measured: needs root")
rep.write()
PY
    exit 0
fi
bench_pkgs bubblewrap squashfuse squashfs-tools fuse3
bench_capsa

user_dir "$WORK/apps" "$WORK/mnt"
quiet as_user "$CAPSA_BIN" pack "$ROOT/samples/python3/capsa.toml" -o "$WORK/apps/python3.capsa"
quiet as_user "$CAPSA_BIN" install --yes "$WORK/apps/python3.capsa"
quiet as_user "$CAPSA_BIN" run org.python.Python3 -- -c pass
app_tree "$WORK/apps/python3.capsa" "$WORK/tree"
SQFS=
if have mksquashfs && have squashfuse; then
    mksquashfs "$WORK/tree" "$WORK/apps/python3.sqfs" -comp zstd -noappend -no-progress -quiet >/dev/null
    chmod 644 "$WORK/apps/python3.sqfs"
    SQFS=$WORK/apps/python3.sqfs
    # squashfuse (libfuse 3) opens /dev/fuse itself: Debian's udev makes it 0666, containers
    # often 0600. Make it usable for the measuring user for the length of the run.
    if ! as_user test -r /dev/fuse -a -w /dev/fuse; then
        old=$(stat -c %a /dev/fuse)
        log "/dev/fuse is mode $old: 0666 (as on a stock Debian system) until the end of the run"
        chmod 666 /dev/fuse
        CLEANUP_HOOKS+=("chmod $old /dev/fuse")
    fi
    CLEANUP_HOOKS+=("fusermount3 -u -q $WORK/mnt 2>/dev/null || umount -l $WORK/mnt 2>/dev/null")
fi

export CAPSA_BIN SQFS
bench_py - <<'PY'
import os
from benchlib import Cmd, Report, rounds, med, user_env

W = os.environ["BENCH_WORK"]
capsa = os.environ["CAPSA_BIN"]
code = os.environ["PY_CODE"]
uid, gid = os.environ["BENCH_RUN_UID"], os.environ["BENCH_RUN_GID"]
rep = Report("cold", "First run of python3 with cold caches", int(os.environ["RUNS"]))
drop = "sync && echo 3 > /proc/sys/vm/drop_caches"
fresh = f"rm -rf {W}/cache/capsa"
cmds = []
first = Cmd("capsa run BUNDLE (no layer cache)", [capsa, "run", f"{W}/apps/python3.capsa", "--", "-c", code],
            prepare=[fresh, drop])
cmds.append(first)
never = Cmd("capsa run BUNDLE (never run: no layer cache, no state)",
            [capsa, "run", f"{W}/apps/python3.capsa", "--", "-c", code],
            env=user_env(W, {"XDG_DATA_HOME": f"{W}/never/data", "XDG_CACHE_HOME": f"{W}/never/cache"}),
            prepare=[f"rm -rf {W}/never && mkdir -p {W}/never/data {W}/never/cache && chown -R {uid}:{gid} {W}/never",
                     drop])
cmds.append(never)
inst = Cmd("capsa run APP-ID (installed, page cache cold)", [capsa, "run", "org.python.Python3", "--", "-c", code],
           prepare=drop)
cmds.append(inst)
sq = None
if os.environ["SQFS"]:
    mnt = f"{W}/mnt"
    sq = Cmd("squashfuse mount + bwrap run", f"squashfuse {os.environ['SQFS']} {mnt} && "
             f"bwrap --unshare-all --die-with-parent --ro-bind {mnt} / --proc /proc --dev /dev --tmpfs /tmp "
             f"/usr/bin/python3.11 -c '{code}'",
             prepare=drop, after=f"fusermount3 -u {mnt} || umount -l {mnt}")
    cmds.append(sq)
host = Cmd("host python3", ["/usr/bin/python3.11", "-c", code], prepare=drop)
cmds.append(host)
rounds(cmds, int(os.environ["RUNS"]), warmup=0, label="cold")
rep.timing_table(f"1. First run of python3 -c '{code}', page cache dropped before each run", cmds, ref=sq or host)
rep.note("before every run (untimed): `sync; echo 3 > /proc/sys/vm/drop_caches`; for the bundle file also "
         "`rm -rf $XDG_CACHE_HOME/capsa` (its layers are unpacked again, as on a first run; its state, "
         "made by the first round, stays); the never-run row also gets a fresh, empty XDG_DATA_HOME and "
         "XDG_CACHE_HOME (no state, no consent, no layer cache)")
if sq:
    rep.note("squashfuse: the same tree (capsa extract of the bundle) in a squashfs image made once with "
             "`mksquashfs -comp zstd` (level 15); timed: `squashfuse IMG MNT && bwrap --ro-bind MNT / ... python3`, "
             "unmounted after each run (untimed); the CPU and RSS of the squashfuse daemon are not counted "
             "(it detaches) and bwrap's leave out the sandboxed program (its monitor does not reap it)")
    rep.target("first cold run, capsa BUNDLE ÷ squashfuse", med(first.wall) / med(sq.wall), 1.0)
else:
    rep.note("squashfuse or mksquashfs missing: no squashfuse row")
    rep.target("first cold run, capsa BUNDLE ÷ squashfuse", None, 1.0, note="squashfuse not installed")
rep.write()
PY
