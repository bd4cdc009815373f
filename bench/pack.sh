#!/usr/bin/env bash
# Pack and unpack costs against tar|zstd and squashfs (see bench/README.md, "pack.sh"), on the
# python3 sample without __pycache__:
#   1. pack at the default level (9): time, CPU, peak RSS, size — capsa pack, tar | zstd -T0 -9
#      --long=27, mksquashfs -comp zstd (its default level, 15);
#   2. pack at level 19: the same with zstd -19 (peak RSS is the point);
#   3. extract / install CPU into tmpfs: capsa extract, capsa install, zstd -d | tar -x, unsquashfs.
# Usage: bash bench/pack.sh      BENCH_RUNS=3 for a smoke run (default 5, 3 and 10 rounds)
source "$(dirname "$0")/lib.sh"
bench_init pack
RUNS_PACK=$(runs_or 5)
RUNS_19=$(runs_or 3)
RUNS_UNPACK=$(runs_or 10)
bench_pkgs zstd tar squashfs-tools
bench_capsa

user_dir "$WORK/apps" "$WORK/out"
# The python3 sample, __pycache__ left out (the recipe's own excludes kept).
sed 's|^exclude = \[|exclude = [\n    "/usr/lib/python3.11/**/__pycache__",\n    "/usr/lib/python3.11/**/__pycache__/**",|' \
    "$ROOT/samples/python3/capsa.toml" >"$WORK/apps/python3.toml"
grep -q __pycache__ "$WORK/apps/python3.toml" || die "could not add the __pycache__ exclude to the recipe"
quiet as_user "$CAPSA_BIN" pack "$WORK/apps/python3.toml" -o "$WORK/apps/python3.capsa"
# The same files for tar and mksquashfs: the bundle's tree.
quiet as_user "$CAPSA_BIN" extract "$WORK/apps/python3.capsa" "$WORK/stage"
tar -C "$WORK/stage" --sort=name -cf - . | zstd -q -T0 -9 --long=27 -o "$WORK/apps/python3.tar.zst"
SQFS=
if have mksquashfs; then
    mksquashfs "$WORK/stage" "$WORK/apps/python3.sqfs" -comp zstd -noappend -no-progress -quiet >/dev/null
    SQFS=$WORK/apps/python3.sqfs
fi
chmod 644 "$WORK/apps"/python3.*
ENTRIES=$(entries_of_bundle "$WORK/apps/python3.capsa")
FILE_BYTES=$(find "$WORK/stage" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
TMPFS=$(mktemp -d "${BENCH_TMPFS:-/dev/shm}/capsa-bench-pack.XXXXXX")
CLEANUP_HOOKS+=("rm -rf $TMPFS")
[ "$RUN_UID" = "$(id -u)" ] || chown "$RUN_UID:$RUN_GID" "$TMPFS"
[ "$(stat -f -c %T "$TMPFS")" = tmpfs ] || log "warning: $TMPFS is not on tmpfs (BENCH_TMPFS)"

export CAPSA_BIN SQFS RUNS_PACK RUNS_19 RUNS_UNPACK ENTRIES FILE_BYTES TMPFS
bench_py - <<'PY'
import os
from benchlib import Cmd, Report, rounds, med, ms, ms_spread, mb, ratio, user_env

W = os.environ["BENCH_WORK"]
capsa = os.environ["CAPSA_BIN"]
sqfs = os.environ["SQFS"]
T = os.environ["TMPFS"]
uid, gid = os.environ["BENCH_RUN_UID"], os.environ["BENCH_RUN_GID"]
recipe = f"{W}/apps/python3.toml"
stage = f"{W}/stage"
O = f"{W}/out"
rep = Report("pack", "Pack and unpack: capsa against tar | zstd and squashfs", int(os.environ["RUNS_PACK"]))
rep.add(f"Input: `samples/python3` without `__pycache__`: {os.environ['ENTRIES']} entries, "
        f"{int(os.environ['FILE_BYTES']) / 1e6:.1f} MB of file content; capsa packs from the host paths, "
        "tar and mksquashfs from the bundle's extracted tree (the same bytes). Every tool uses every core.")
rep.add()
sizes = {}


def s(x):
    return "—" if x is None else f"{x:.2f}"


def pack_table(title, cmds, paths, tz, sq, runs):
    body = []
    for c in cmds:
        size = os.path.getsize(paths[c.name])
        sizes[c.name] = size
        row = [c.name, s(med(c.wall)), f"{s(min(c.wall))}–{s(max(c.wall))}", s(med(c.cpu)), mb(med(c.rss)),
               f"{size / 1e6:.2f}", ratio(med(c.wall), med(tz.wall))]
        if sq:
            row += [ratio(size, os.path.getsize(paths[sq.name])), ratio(med(c.wall), med(sq.wall))]
        body.append(row)
    head = ["command", "median s", "min–max s", "CPU s", "peak RSS MB", "size MB", f"time ÷ {tz.name}"]
    if sq:
        head += [f"size ÷ {sq.name}", f"time ÷ {sq.name}"]
    rep.table(f"{title} ({runs} rounds)", head, body,
              data={c.name: {"size_bytes": sizes[c.name]} for c in cmds})
    rep.record(cmds)


# 1. default level
paths = {}
def packcmd(name, argv, path):
    paths[name] = path
    return Cmd(name, argv, prepare=f"rm -f {path} && sync")

cp = packcmd("capsa pack (default: level 9)", [capsa, "pack", recipe, "-o", f"{O}/p.capsa"], f"{O}/p.capsa")
tz = packcmd("tar | zstd -T0 -9 --long=27", f"tar -C {stage} --sort=name -cf - . | zstd -q -T0 -9 --long=27 -o {O}/p.tar.zst",
             f"{O}/p.tar.zst")
cmds = [cp, tz]
sq = None
if sqfs:
    sq = packcmd("mksquashfs -comp zstd", ["mksquashfs", stage, f"{O}/p.sqfs", "-comp", "zstd", "-noappend",
                                           "-no-progress", "-quiet"], f"{O}/p.sqfs")
    cmds.append(sq)
rounds(cmds, int(os.environ["RUNS_PACK"]), warmup=1, label="pack -9")
pack_table("1. Pack at the default level", cmds, paths, tz, sq, os.environ["RUNS_PACK"])
rep.note("capsa pack walks the ELF closure, hashes every file, writes three layers with their TOCs and the "
         "manifest, and fsyncs its output; tar|zstd and mksquashfs do not fsync; `rm` and `sync` before each "
         "run are untimed")
rep.target("pack time at level 9 ÷ tar | zstd -T0 -9 --long", med(cp.wall) / med(tz.wall), 1.1)
if sq:
    rep.target("bundle size at the default level ÷ mksquashfs (zstd)", sizes[cp.name] / sizes[sq.name], 0.85)
    rep.target("pack time at the default level ÷ mksquashfs (zstd)", med(cp.wall) / med(sq.wall), 0.5)

# 2. level 19
c19 = packcmd("capsa pack --level 19", [capsa, "pack", recipe, "-o", f"{O}/p19.capsa", "--level", "19"], f"{O}/p19.capsa")
z19 = packcmd("tar | zstd -T0 -19 --long=27",
              f"tar -C {stage} --sort=name -cf - . | zstd -q -T0 -19 --long=27 -o {O}/p19.tar.zst", f"{O}/p19.tar.zst")
rounds([c19, z19], int(os.environ["RUNS_19"]), warmup=0, label="pack -19")
pack_table("2. Pack at level 19", [c19, z19], paths, z19, None, os.environ["RUNS_19"])
rep.note("peak RSS: the largest single process (zstd's in the pipeline; capsa pack is one process)")
rep.target("`pack --level 19` peak RSS", med(c19.rss) * 1024 / 1e6, 200.0, unit="MB")

# 3. extract / install into tmpfs
def fresh(d):
    return f"rm -rf {d} && mkdir -p {d} && chown {uid}:{gid} {d}"

ex = Cmd("capsa extract", [capsa, "extract", f"{W}/apps/python3.capsa", f"{T}/x/tree"], prepare=fresh(f"{T}/x"))
ins = Cmd("capsa install", [capsa, "install", "--yes", f"{W}/apps/python3.capsa"],
          env=user_env(W, {"XDG_DATA_HOME": f"{T}/data"}), prepare=fresh(f"{T}/data"))
zt = Cmd("zstd -d | tar -x", f"zstd -q -d --long=27 -c {W}/apps/python3.tar.zst | tar -x -C {T}/t",
         prepare=fresh(f"{T}/t"))
cmds = [ex, ins, zt]
if sqfs:
    cmds.append(Cmd("unsquashfs", ["unsquashfs", "-q", "-n", "-d", f"{T}/u/tree", sqfs], prepare=fresh(f"{T}/u")))
rounds(cmds, int(os.environ["RUNS_UNPACK"]), warmup=1, label="unpack")
rep.timing_table(f"3. Extract / install into tmpfs ({os.environ['RUNS_UNPACK']} rounds; ratios of CPU time)",
                 cmds, ref=zt, what="cpu")
rep.note("CPU = user + system time of the command and every process it reaped (both sides of the pipeline, and "
         "`sh -c`, about 1 ms); capsa extract and install check the sha256 of every layer and file, "
         "zstd|tar only zstd's frame checksum, unsquashfs nothing; the target directory is on tmpfs "
         f"({T}), so no disk writes are timed")
rep.target("extract CPU ÷ zstd -d | tar -x", med(ex.cpu) / med(zt.cpu), 1.2)
rep.target("install CPU ÷ zstd -d | tar -x", med(ins.cpu) / med(zt.cpu), 1.2)
rep.write()
PY
