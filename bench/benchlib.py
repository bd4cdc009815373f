"""Shared measurement and reporting for the bench/*.sh scripts.

Measurement: `rounds()` runs a list of commands round by round, interleaved (every command
once per round, the order rotated by one each round so that no command always follows the
same one), after `warmup` untimed rounds. Each timed run is one fork/exec by this process and
one `os.wait4`, which gives the wall time (perf_counter around spawn and reap), the CPU time
(ru_utime + ru_stime) and the peak RSS (ru_maxrss) of the child. Both rusage figures cover the
child *and every descendant it waited for*: CPU is the sum over the tree, peak RSS the largest
single process of the tree (not the sum), e.g. a launcher's forked children before they exec.

A command's `prepare` and `after` shell snippets run untimed, before and after each of its
runs, as this process's user (root when the scripts run as root: drop_caches, dd, sync, rm);
the command itself runs as BENCH_RUN_UID/BENCH_RUN_GID when they are set (the unprivileged
user), else as this process's user.

Reporting: `Report` collects Markdown tables and the raw samples, prints the Markdown to
stdout and writes OUT/NAME.md and OUT/NAME.json (every sample of every command, the stats,
the targets with their verdicts, and the run's metadata).
"""

import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
# bench/spawn.c, built by lib.sh's bench_init into the work dir.
SPAWN = os.environ.get("BENCH_SPAWN", "bench-spawn")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def have(cmd):
    return shutil.which(cmd) is not None


def user_env(work, extra=None):
    """The environment of a measured command: the same as lib.sh's `as_user`."""
    env = {
        "HOME": f"{work}/home",
        "XDG_DATA_HOME": f"{work}/data",
        "XDG_CACHE_HOME": f"{work}/cache",
        "XDG_CONFIG_HOME": f"{work}/config",
        "XDG_STATE_HOME": f"{work}/state",
        "TMPDIR": f"{work}/tmp",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "USER": os.environ.get("BENCH_RUN_USER", os.environ.get("USER", "")),
        "LOGNAME": os.environ.get("BENCH_RUN_USER", os.environ.get("USER", "")),
    }
    if extra:
        env.update(extra)
    return env


class Cmd:
    """One measured command: argv (a list) or a shell string (`sh -c`, whose own cost, about a
    millisecond, is then part of the time). `prepare`/`after`: shell snippets or a list of them."""

    def __init__(self, name, argv, env=None, prepare=(), after=(), cwd=None, ok=(0,), as_user=True):
        self.name = name
        self.argv = ["sh", "-c", argv] if isinstance(argv, str) else list(argv)
        self.env = env if env is not None else user_env(os.environ["BENCH_WORK"])
        self.prepare = [prepare] if isinstance(prepare, str) else list(prepare)
        self.after = [after] if isinstance(after, str) else list(after)
        self.cwd = cwd or "/"
        self.ok = ok
        self.as_user = as_user
        self.wall, self.cpu, self.user, self.sys, self.rss = [], [], [], [], []

    def shown(self):
        return " ".join(shlex.quote(a) for a in self.argv)


def sh(snippet, what):
    r = subprocess.run(["sh", "-c", snippet], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"bench: {what} failed (exit {r.returncode}): {snippet}")


def _ids():
    uid = os.environ.get("BENCH_RUN_UID")
    gid = os.environ.get("BENCH_RUN_GID")
    if uid is None or int(uid) == os.getuid():
        return None
    return int(uid), int(gid)


def as_user_sh(argv, env):
    """A shell snippet (for prepare/after) running argv as the measuring user with env."""
    ids = _ids()
    pre = ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}", "--clear-groups"] if ids else []
    full = pre + ["env", "-i"] + [f"{k}={v}" for k, v in env.items()] + list(argv)
    return "cd / && " + " ".join(shlex.quote(a) for a in full)


def run_once(c):
    """One timed run of c through bench-spawn: (wall s, user s, sys s, maxrss KiB)."""
    ids = _ids() if c.as_user else None
    kw = {}
    if ids:
        kw = {"user": ids[0], "group": ids[1], "extra_groups": []}
    r, w = os.pipe()
    with tempfile.TemporaryFile() as err:
        try:
            p = subprocess.Popen([SPAWN, str(w)] + c.argv, env=c.env, cwd=c.cwd, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err, pass_fds=(w,), **kw)
        finally:
            os.close(w)
        with os.fdopen(r) as f:
            line = f.read()
        p.wait()
        fields = line.split()
        code = os.waitstatus_to_exitcode(int(fields[4])) if len(fields) == 5 else None
        if p.returncode != 0 or code not in c.ok:
            err.seek(0)
            sys.stderr.write(err.read().decode(errors="replace")[-4000:])
            raise SystemExit(f"bench: '{c.name}' exited {code} (bench-spawn {p.returncode}): {c.shown()}")
    ns, ut, st, rss = (int(x) for x in fields[:4])
    return ns / 1e9, ut / 1e6, st / 1e6, rss


def rounds(cmds, runs, warmup=1, label=""):
    """Runs every command once per round, `warmup` untimed rounds then `runs` timed ones."""
    n = len(cmds)
    for r in range(-warmup, runs):
        if r == -warmup and warmup:
            log(f"{label or 'rounds'}: {warmup} warm-up round(s), {n} commands")
        elif r >= 0 and (r + 1) % max(1, runs // 4) == 0:
            log(f"{label or 'rounds'}: round {r + 1}/{runs}")
        k = r % n
        for c in cmds[k:] + cmds[:k]:
            for s in c.prepare:
                sh(s, f"prepare of '{c.name}'")
            wall, u, s_, rss = run_once(c)
            for s in c.after:
                sh(s, f"after of '{c.name}'")
            if r >= 0:
                c.wall.append(wall)
                c.user.append(u)
                c.sys.append(s_)
                c.cpu.append(u + s_)
                c.rss.append(rss)
    return cmds


def med(xs):
    return statistics.median(xs) if xs else None


def stats(c):
    if not c.wall:
        return None
    return {
        "runs": len(c.wall),
        "wall_median_s": med(c.wall), "wall_min_s": min(c.wall), "wall_max_s": max(c.wall),
        "cpu_median_s": med(c.cpu), "cpu_min_s": min(c.cpu), "cpu_max_s": max(c.cpu),
        "user_median_s": med(c.user), "sys_median_s": med(c.sys),
        "maxrss_median_kib": med(c.rss), "maxrss_min_kib": min(c.rss), "maxrss_max_kib": max(c.rss),
    }


# ------------------------------------------------------------------ formatting

def ms(s):
    if s is None:
        return "—"
    v = s * 1000
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def ms_spread(xs):
    return f"{ms(min(xs))}–{ms(max(xs))}" if xs else "—"


def mb(kib):
    """ru_maxrss (KiB) in MB (10^6 bytes), the unit of the issue's numbers."""
    return "—" if kib is None else f"{kib * 1024 / 1e6:.1f}"


def ratio(a, b):
    return "—" if a is None or not b else f"{a / b:.2f}×"


def table(head, body):
    esc = lambda c: str(c).replace("|", "\\|").replace("\n", " ")
    out = ["| " + " | ".join(esc(h) for h in head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
    return "\n".join(out)


PEER_PACKAGES = ["bubblewrap", "firejail", "flatpak", "squashfuse", "squashfs-tools", "zstd", "tar", "python3.11"]


def package_versions():
    """Debian package versions of the peers (absent ones left out), and the bwrap built by lib.sh."""
    v = {}
    for p in PEER_PACKAGES:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}|${Version}", p], capture_output=True, text=True)
        status, _, version = r.stdout.partition("|")
        if r.returncode == 0 and "ok installed" in status:
            v[p] = version
    if os.environ.get("BWRAP_OVL_VERSION"):
        v["bwrap with --overlay-src"] = f"{os.environ['BWRAP_OVL_VERSION']} ({os.environ.get('BWRAP_OVL', '')})"
    return v


class Report:
    """Markdown tables on stdout and OUT/NAME.md, every number in OUT/NAME.json."""

    def __init__(self, name, title, runs):
        self.name, self.title, self.runs = name, title, runs
        self.md = []
        self.doc = {"meta": self.meta(), "tables": [], "commands": {}, "targets": [], "notes": []}
        self.t0 = time.time()

    def meta(self):
        m = {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "kernel": platform.release(),
            "cores": os.cpu_count(),
            "loadavg_start": open("/proc/loadavg").read().split()[:3],
            "runs": None,
            "user": os.environ.get("BENCH_RUN_USER", ""),
            "capsa": os.environ.get("BENCH_CAPSA_VERSION", ""),
            "capsa_git": os.environ.get("BENCH_CAPSA_GIT", ""),
            "packages": package_versions(),
        }
        try:
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    m["cpu"] = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        return m

    def add(self, text=""):
        self.md.append(text)

    def note(self, text):
        self.doc["notes"].append(text)
        self.md.append(f"- {text}")

    def record(self, cmds, group=None):
        """Keeps every sample of these commands in the JSON."""
        for c in cmds:
            key = f"{group}/{c.name}" if group else c.name
            self.doc["commands"][key] = {
                "argv": c.argv, "stats": stats(c),
                "samples": {"wall_s": c.wall, "user_s": c.user, "sys_s": c.sys, "maxrss_kib": c.rss},
            }

    def table(self, title, head, body, data=None):
        if self.md and self.md[-1] != "":
            self.md.append("")
        self.md += [f"### {title}", "", table(head, body), ""]
        self.doc["tables"].append({"title": title, "head": head, "rows": body, "data": data})

    def timing_table(self, title, cmds, ref=None, what="wall", extra=None, first_col="command"):
        """Standard table: median, min–max, CPU, peak RSS, ratio to `ref` (a Cmd or None)."""
        rs = med(ref.wall) if ref else None
        rc = med(ref.cpu) if ref else None
        head = [first_col, "median ms", "min–max ms", "CPU ms (median)", "peak RSS MB"]
        if ref:
            head += [f"÷ {ref.name}" + (" (CPU)" if what == "cpu" else "")]
        if extra:
            head += extra[0]
        body = []
        for i, c in enumerate(cmds):
            row = [c.name, ms(med(c.wall)), ms_spread(c.wall), ms(med(c.cpu)), mb(med(c.rss))]
            if ref:
                row.append(ratio(med(c.cpu), rc) if what == "cpu" else ratio(med(c.wall), rs))
            if extra:
                row += extra[1][i]
            body.append(row)
        self.table(title, head, body, data={c.name: stats(c) for c in cmds})
        self.record(cmds, group=title)

    def target(self, what, value, limit, unit="×", note=""):
        """A target: value ≤ limit. value None = not measured (note says why)."""
        met = None if value is None else value <= limit
        self.doc["targets"].append({"target": what, "value": value, "limit": limit, "unit": unit,
                                    "met": met, "note": note})

    def targets_table(self):
        if not self.doc["targets"]:
            return
        body = []
        for t in self.doc["targets"]:
            fmt = (lambda v: f"{v:.2f}×") if t["unit"] == "×" else (lambda v: f"{v:.1f} {t['unit']}")
            v = "n/a" if t["value"] is None else fmt(t["value"])
            verdict = "—" if t["met"] is None else ("**met**" if t["met"] else "**missed**")
            body.append([t["target"], v, f"≤ {fmt(t['limit'])}", verdict, t["note"]])
        self.table("Targets", ["target", "measured", "limit", "verdict", "note"], body)

    def write(self):
        self.targets_table()
        self.doc["meta"]["runs"] = self.runs
        self.doc["meta"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        self.doc["meta"]["seconds"] = round(time.time() - self.t0, 1)
        m = self.doc["meta"]
        head = [
            f"## {self.title}",
            "",
            f"{m['date']} · Linux {m['kernel']} · {m['cores']} cores"
            + (f" ({m['cpu']})" if m.get("cpu") else "")
            + f" · capsa {m['capsa']} (git {m['capsa_git']}) · measured as `{m['user'] or os.environ.get('USER', '?')}`"
            + f" · {self.runs} interleaved rounds per command unless a table says otherwise"
            + f" · load {' '.join(m['loadavg_start'])} → {' '.join(m['loadavg_end'])}"
            + f" · {m['seconds']} s",
            "",
        ]
        text = "\n".join(head + self.md) + "\n"
        sys.stdout.write(text)
        out = os.environ.get("BENCH_OUT", os.path.join(BENCH_DIR, "out"))
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, f"{self.name}.md"), "w") as f:
            f.write(text)
        with open(os.path.join(out, f"{self.name}.json"), "w") as f:
            json.dump(self.doc, f, indent=1)
            f.write("\n")
        log(f"wrote {out}/{self.name}.md and {out}/{self.name}.json")
