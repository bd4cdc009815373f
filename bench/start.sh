#!/usr/bin/env bash
# Start-up against the peers, interleaved in one run (see bench/README.md, "start.sh"):
#   1. `true` in the sandbox: host, bwrap with capsa's default mounts (overlay root from the
#      app's tree, proc, dev, tmp), bwrap 0.8 with the tree bound read-only, firejail, flatpak,
#      capsa run BUNDLE / APP-ID / --ephemeral;
#   2. python3 `import json, email.parser, http.client`: host, bwrap overlay, capsa;
#   3. the launcher's peak RSS (from the rounds of 1).
# Usage: bash bench/start.sh      BENCH_RUNS=5 for a smoke run (default 40 and 30 rounds)
source "$(dirname "$0")/lib.sh"
bench_init start
RUNS_TRUE=$(runs_or 40)
RUNS_PY=$(runs_or 30)
PY_CODE=${BENCH_PY_CODE:-import json, email.parser, http.client}
bench_pkgs bubblewrap firejail flatpak dbus zstd gcc
bench_capsa
bench_bwrap_overlay

# ------------------------------------------------------------------ apps
user_dir "$WORK/apps" "$WORK/bw"
true_recipe "$WORK/apps/true.toml" org.capsa.bench.True
quiet as_user "$CAPSA_BIN" pack "$WORK/apps/true.toml" -o "$WORK/apps/true.capsa"
quiet as_user "$CAPSA_BIN" pack "$ROOT/samples/python3/capsa.toml" -o "$WORK/apps/python3.capsa"
for b in true python3; do
    quiet as_user "$CAPSA_BIN" install --yes "$WORK/apps/$b.capsa"
    app_tree "$WORK/apps/$b.capsa" "$WORK/bw/$b-tree"
    user_dir "$WORK/bw/$b-up" "$WORK/bw/$b-wk"
done
quiet as_user "$CAPSA_BIN" run "$WORK/apps/true.capsa" # fills the layer cache of the bundle file
quiet as_user "$CAPSA_BIN" run "$WORK/apps/python3.capsa" -- -c pass

# ------------------------------------------------------------------ flatpak
# No runtime can be downloaded here, so when flatpak is installed we build one offline from the
# true app's own tree (exactly the files capsa runs) and export it with flatpak build-export;
# the app is /usr/bin/true of that runtime. Installing needs a system bus only for flatpak's
# parental-controls query: a private dbus-daemon stands in (a missing service is skipped).
FLATPAK_WHY=
flatpak_setup() {
    local f=$WORK/flatpak bus pid
    have flatpak || {
        FLATPAK_WHY="n/a (flatpak not installed)"
        return
    }
    have dbus-daemon || {
        FLATPAK_WHY="n/a (no dbus-daemon for flatpak install)"
        return
    }
    user_dir "$f" "$f/rt"
    cp -a "$WORK/bw/true-tree/usr" "$f/rt/usr"
    mkdir -p "$f/rt/files"
    printf '[Runtime]\nname=org.capsa.bench.Platform\nruntime=org.capsa.bench.Platform/x86_64/1\nsdk=org.capsa.bench.Platform/x86_64/1\n' >"$f/rt/metadata"
    [ "$RUN_UID" = "$(id -u)" ] || chown -R "$RUN_UID:$RUN_GID" "$f"
    bus=$f/bus
    if ! as_user sh -ec '
        f=$1
        pid=$(dbus-daemon --session --address="unix:path=$f/bus" --fork --print-pid)
        trap "kill $pid" EXIT
        export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$f/bus"
        flatpak build-export --runtime "$f/repo" "$f/rt" 1
        flatpak --user remote-add --no-gpg-verify bench "file://$f/repo"
        flatpak --user install -y --noninteractive bench org.capsa.bench.Platform//1
        flatpak build-init "$f/app" org.capsa.bench.FlatpakTrue org.capsa.bench.Platform org.capsa.bench.Platform 1
        flatpak build-finish "$f/app" --command=/usr/bin/true
        flatpak build-export "$f/repo" "$f/app" master
        flatpak --user install -y --noninteractive bench org.capsa.bench.FlatpakTrue
        flatpak run org.capsa.bench.FlatpakTrue' sh "$f" >"$f/setup.log" 2>&1; then
        tail -5 "$f/setup.log" >&2
        FLATPAK_WHY="n/a (could not build and install a local runtime: see the log above)"
    fi
}
flatpak_setup

# ------------------------------------------------------------------ measure and report
export CAPSA_BIN BWRAP_OVL BWRAP_OVL_WHY FLATPAK_WHY RUNS_TRUE RUNS_PY PY_CODE
bench_py - <<'PY'
import os
from benchlib import Cmd, Report, rounds, med, ms, ms_spread, mb, ratio, have

W = os.environ["BENCH_WORK"]
capsa = os.environ["CAPSA_BIN"]
bwo = os.environ["BWRAP_OVL"]
code = os.environ["PY_CODE"]
A = f"{W}/apps"
rep = Report("start", "Start-up: capsa against host, bwrap, firejail, flatpak", int(os.environ["RUNS_TRUE"]))


def bwrap_overlay(app, argv, persistent=True):
    root = (["--overlay", f"{W}/bw/{app}-up", f"{W}/bw/{app}-wk", "/"] if persistent
            else ["--tmp-overlay", "/"])
    return [bwo, "--unshare-all", "--die-with-parent", "--overlay-src", f"{W}/bw/{app}-tree", *root,
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", *argv]


# 1. true
t = []
host = Cmd("host", ["/usr/bin/true"]); t.append(host)
ref = None
if bwo:
    ref = Cmd("bwrap overlay (capsa's mounts)", bwrap_overlay("true", ["/usr/bin/true"])); t.append(ref)
    t.append(Cmd("bwrap --tmp-overlay", bwrap_overlay("true", ["/usr/bin/true"], persistent=False)))
flat = Cmd("bwrap 0.8 --ro-bind tree", ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", f"{W}/bw/true-tree", "/",
                                        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "/usr/bin/true"])
t.append(flat)
ref = ref or flat
if have("firejail"):
    t.append(Cmd("firejail --noprofile", ["firejail", "--quiet", "--noprofile", "/usr/bin/true"]))
fj_missing = not have("firejail")
if not os.environ["FLATPAK_WHY"]:
    t.append(Cmd("flatpak run", ["flatpak", "run", "org.capsa.bench.FlatpakTrue"]))
bundle = Cmd("capsa run BUNDLE", [capsa, "run", f"{A}/true.capsa"]); t.append(bundle)
inst = Cmd("capsa run APP-ID", [capsa, "run", "org.capsa.bench.True"]); t.append(inst)
eph = Cmd("capsa run --ephemeral APP-ID", [capsa, "run", "--ephemeral", "org.capsa.bench.True"]); t.append(eph)
rounds(t, int(os.environ["RUNS_TRUE"]), warmup=2, label="true")
rep.timing_table("1. `true` in the sandbox (warm caches)", t, ref=ref)
if fj_missing:
    rep.note("firejail: not installed (as root the script installs it)")
if not os.environ["FLATPAK_WHY"]:
    rep.note("flatpak: a runtime built offline from the true app's tree (`flatpak build-export --runtime`), "
             "app command /usr/bin/true; no runtime can be downloaded here")
else:
    rep.note(f"flatpak: {os.environ['FLATPAK_WHY']}")
if bwo:
    rep.note(f"bwrap overlay rows: {os.environ['BWRAP_OVL_VERSION']} ({bwo}); `bwrap 0.8`: Debian 12's. "
             "bwrap's CPU and RSS leave out the sandboxed program: with a pid namespace its monitor exits "
             "when the sandbox's pid 1 reports the exit status, without reaping it")
else:
    rep.note(f"no bwrap with --overlay-src ({os.environ['BWRAP_OVL_WHY']}): the reference is bwrap --ro-bind of the tree")
rep.add()
for c, what in ((bundle, "bundle"), (inst, "installed")):
    rep.target(f"`true` {what} ÷ {ref.name}", med(c.wall) / med(ref.wall), 1.0)

# 2. python import
p = []
phost = Cmd("host python3", ["/usr/bin/python3.11", "-c", code]); p.append(phost)
if bwo:
    p.append(Cmd("bwrap overlay (capsa's mounts)", bwrap_overlay("python3", ["/usr/bin/python3.11", "-c", code])))
pb = Cmd("capsa run BUNDLE", [capsa, "run", f"{A}/python3.capsa", "--", "-c", code]); p.append(pb)
pi = Cmd("capsa run APP-ID", [capsa, "run", "org.python.Python3", "--", "-c", code]); p.append(pi)
rounds(p, int(os.environ["RUNS_PY"]), warmup=2, label="python")
rep.timing_table(f"2. python3 -c '{code}' ({os.environ['RUNS_PY']} rounds)", p, ref=phost)
rep.target("python import, installed ÷ host", med(pi.wall) / med(phost.wall), 1.05)
rep.target("python import, bundle ÷ host", med(pb.wall) / med(phost.wall), 1.05)

# 3. peak RSS
body = []
for c in t[1:]:
    body.append([c.name, mb(med(c.rss)), f"{mb(min(c.rss))}–{mb(max(c.rss))}", ratio(med(c.rss), med(ref.rss))])
rep.table("3. Launcher peak RSS running `true` (ru_maxrss from wait4, rounds of table 1)",
          ["launcher", "peak RSS MB (median)", "min–max MB", f"÷ {ref.name}"], body)
rep.note("ru_maxrss of a waited-for child is the largest RSS of any single process in its tree "
         "(the launcher and every descendant it reaped, e.g. its forked children before they exec), "
         "not the sum; `true` itself is about 1 MB, so the figure is the launcher's own or one of its forks")
rep.add()
rep.target("launcher peak RSS, `capsa run APP-ID true`", med(inst.rss) * 1024 / 1e6, 4.0, unit="MB")
rep.write()
PY
