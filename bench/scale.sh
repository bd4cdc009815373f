#!/usr/bin/env bash
# Start-up and install against the number of files in the app (see bench/README.md, "scale.sh"):
# for each N in BENCH_FILES, an app of /usr/bin/true (its libc closure: 28 entries) plus N small
# files; `capsa run BUNDLE`, `capsa run APP-ID` and bwrap with an overlay root from the app's
# tree, all N interleaved in one run; then `capsa install` against `zstd -d | tar -x` of the
# same tree, also interleaved.
# Usage: bash bench/scale.sh     BENCH_RUNS=3 for a smoke run (default 30 start, 10 install rounds)
source "$(dirname "$0")/lib.sh"
bench_init scale
RUNS_START=$(runs_or 30)
RUNS_INSTALL=$(runs_or 10)
FILES=${BENCH_FILES:-0 100 1000 10000 25000 50000}
LEVEL=${BENCH_LEVEL:-9}
for n in $FILES; do [[ $n =~ ^[0-9]+$ ]] || die "BENCH_FILES: '$n' is not a number"; done
bench_pkgs bubblewrap zstd tar
bench_capsa
bench_bwrap_overlay

user_dir "$WORK/apps" "$WORK/bw"
: >"$WORK/apps.tsv"
for n in $FILES; do
    log "app with $n extra files: generate, pack, install, extract"
    dirs=()
    if ((n > 0)); then
        gen_files "$WORK/src/files-$n" "$n"
        chmod -R a+rX "$WORK/src"
        dirs=("$WORK/src/files-$n")
    fi
    id=org.capsa.bench.Files$n
    true_recipe "$WORK/apps/files-$n.toml" "$id" "${dirs[@]}"
    quiet as_user "$CAPSA_BIN" pack "$WORK/apps/files-$n.toml" -o "$WORK/apps/files-$n.capsa" --level "$LEVEL"
    quiet as_user "$CAPSA_BIN" install --yes "$WORK/apps/files-$n.capsa"
    quiet as_user "$CAPSA_BIN" run "$WORK/apps/files-$n.capsa" # layer cache of the bundle file
    quiet as_user "$CAPSA_BIN" extract "$WORK/apps/files-$n.capsa" "$WORK/bw/tree-$n"
    tar -C "$WORK/bw/tree-$n" --sort=name -cf - . | zstd -q -T0 "-$LEVEL" --long=27 -o "$WORK/apps/files-$n.tar.zst"
    as_user mkdir -p "$WORK/bw/tree-$n/proc" "$WORK/bw/tree-$n/dev" "$WORK/bw/tree-$n/tmp"
    user_dir "$WORK/bw/up-$n" "$WORK/bw/wk-$n"
    printf '%s\t%s\t%s\n' "$n" "$id" "$(entries_of_bundle "$WORK/apps/files-$n.capsa")" >>"$WORK/apps.tsv"
done

export CAPSA_BIN BWRAP_OVL BWRAP_OVL_WHY RUNS_START RUNS_INSTALL LEVEL
bench_py - <<'PY'
import os
from benchlib import Cmd, Report, rounds, med, ms, ms_spread, ratio, user_env

W = os.environ["BENCH_WORK"]
capsa = os.environ["CAPSA_BIN"]
bwo = os.environ["BWRAP_OVL"] or "bwrap"
uid, gid = os.environ["BENCH_RUN_UID"], os.environ["BENCH_RUN_GID"]
apps = [l.rstrip("\n").split("\t") for l in open(f"{W}/apps.tsv")]
rep = Report("scale", "Scaling: start-up and install against the app's file count", int(os.environ["RUNS_START"]))

# 1. start-up
rows = {}
cmds = []
for n, app_id, entries in apps:
    b = Cmd(f"capsa run BUNDLE ({n})", [capsa, "run", f"{W}/apps/files-{n}.capsa"])
    i = Cmd(f"capsa run APP-ID ({n})", [capsa, "run", app_id])
    if os.environ["BWRAP_OVL"]:
        root = ["--overlay-src", f"{W}/bw/tree-{n}", "--overlay", f"{W}/bw/up-{n}", f"{W}/bw/wk-{n}", "/"]
    else:
        root = ["--ro-bind", f"{W}/bw/tree-{n}", "/"]
    w = Cmd(f"bwrap ({n})", [bwo, "--unshare-all", "--die-with-parent", *root, "--proc", "/proc",
                              "--dev", "/dev", "--tmpfs", "/tmp", "/usr/bin/true"])
    rows[n] = (int(entries), b, i, w)
    cmds += [b, i, w]
rounds(cmds, int(os.environ["RUNS_START"]), warmup=2, label="start")
base = rows[apps[0][0]]
body = []
for n, (entries, b, i, w) in rows.items():
    body.append([n, entries, ms(med(b.wall)), ms_spread(b.wall), ratio(med(b.wall), med(base[1].wall)),
                 ms(med(i.wall)), ms_spread(i.wall), ratio(med(i.wall), med(base[2].wall)),
                 ms(med(w.wall)), ms_spread(w.wall), ratio(med(i.wall), med(w.wall))])
bw_name = "bwrap overlay" if os.environ["BWRAP_OVL"] else "bwrap --ro-bind"
rep.table("1. Start-up of `true` against the app's file count (warm caches)",
          ["extra files", "entries", "capsa BUNDLE ms", "min–max", f"÷ {apps[0][0]} files",
           "capsa APP-ID ms", "min–max", f"÷ {apps[0][0]} files", f"{bw_name} ms", "min–max", "APP-ID ÷ bwrap"],
          body)
rep.record(cmds, group="start")
if not os.environ["BWRAP_OVL"]:
    rep.note(f"no bwrap with --overlay-src ({os.environ['BWRAP_OVL_WHY']}): bwrap binds the tree read-only")
for n in rows:
    if int(n) >= 25000:
        _, b, i, _ = rows[n]
        rep.target(f"`true` with {n} files ÷ with {apps[0][0]}, APP-ID", med(i.wall) / med(base[2].wall), 1.1)
        rep.target(f"`true` with {n} files ÷ with {apps[0][0]}, BUNDLE", med(b.wall) / med(base[1].wall), 1.1)
        break

# 2. install
cmds = []
irows = {}
for n, app_id, entries in apps:
    inst = f"{W}/inst-{n}"
    untar = f"{W}/untar-{n}"
    ci = Cmd(f"capsa install ({n})", [capsa, "install", "--yes", f"{W}/apps/files-{n}.capsa"],
             env=user_env(W, {"XDG_DATA_HOME": inst}),
             prepare=f"rm -rf {inst} && mkdir {inst} && chown {uid}:{gid} {inst} && sync")
    zt = Cmd(f"zstd -d | tar -x ({n})", f"zstd -q -d --long=27 -c {W}/apps/files-{n}.tar.zst | tar -x -C {untar}",
             prepare=f"rm -rf {untar} && mkdir {untar} && chown {uid}:{gid} {untar} && sync")
    irows[n] = (int(entries), ci, zt)
    cmds += [ci, zt]
rounds(cmds, int(os.environ["RUNS_INSTALL"]), warmup=1, label="install")
body = []
for n, (entries, ci, zt) in irows.items():
    body.append([n, entries, ms(med(ci.wall)), ms_spread(ci.wall), ms(med(ci.cpu)),
                 ms(med(zt.wall)), ms_spread(zt.wall), ms(med(zt.cpu)),
                 ratio(med(ci.wall), med(zt.wall)), ratio(med(ci.cpu), med(zt.cpu))])
rep.table(f"2. Install against the app's file count ({os.environ['RUNS_INSTALL']} rounds, on the disk of the work dir)",
          ["extra files", "entries", "capsa install ms", "min–max", "CPU ms", "zstd -d | tar -x ms", "min–max",
           "CPU ms", "wall ÷ zstd|tar", "CPU ÷ zstd|tar"], body)
rep.record(cmds, group="install")
rep.note(f"the tar.zst is the app's tree at level {os.environ['LEVEL']} with --long=27, as capsa's layers; "
         "capsa install verifies every byte and fsyncs what it writes, tar does neither; `sync` before "
         "each run (untimed) so no run pays for another's writeback; zstd|tar CPU includes `sh -c`")
rep.write()
PY
