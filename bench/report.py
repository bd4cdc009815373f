#!/usr/bin/env python3
"""Renders bench/run.sh's records as Markdown (stdout and a file) and JSON.

usage: report.py RECORDS.tsv META.tsv INSPECT.json OUT.md OUT.json
"""
import json
import sys

rec_path, meta_path, inspect_path, md_path, json_path = sys.argv[1:6]

meta = {}
with open(meta_path) as f:
    for line in f:
        k, _, v = line.rstrip("\n").partition("\t")
        meta[k] = v

FIELDS = ["section", "tool", "level", "median_s", "min_s", "max_s", "size_bytes", "entries", "note"]
rows = []
with open(rec_path) as f:
    for line in f:
        parts = line.rstrip("\n").split("\t")
        parts += [""] * (len(FIELDS) - len(parts))
        r = dict(zip(FIELDS, parts))
        for k in ("median_s", "min_s", "max_s"):
            r[k] = float(r[k]) if r[k] else None
        for k in ("size_bytes", "entries"):
            r[k] = int(r[k]) if r[k] else None
        rows.append(r)

with open(inspect_path) as f:
    layers = [
        {k: l.get(k) for k in ("role", "size", "unpacked_size", "tar_size", "entries")}
        for l in json.load(f)["manifest"]["layers"]
    ]

file_bytes = int(meta["file_bytes"])
MiB = 1 << 20


def sec(t):
    return "—" if t is None else f"{t:.3f}"


def spread(r):
    if r["min_s"] is None:
        return "—"
    return f"{r['min_s']:.3f}–{r['max_s']:.3f}"


def mib(n):
    return f"{n / MiB:.2f}"


def table(head, body):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(out)


def sect(name):
    return [r for r in rows if r["section"] == name]


md = []
md.append("# Capsa benchmark")
md.append("")
md.append(
    f"{meta['date']} · {meta.get('os', '')} · {meta['kernel']} · {meta['host_cores']} cores"
    + (f" ({meta['cpu']})" if meta.get("cpu") else "")
)
md.append("")
md.append(
    f"- capsa: {meta['capsa']} (git {meta['capsa_git']}); {meta['zstd']}; {meta['squashfs']}; {meta['tar']}"
)
md.append(
    f"- timing: {meta['timer']}, median of {meta['runs']} run(s) (unpack and verify: after one "
    "untimed warm-up run), warm page cache; load average (1/5/15 min) "
    f"{meta.get('loadavg', '?')}: other work on the machine skews the times"
)
md.append(
    f"- file set: `{meta['recipe']}` packed by capsa, then `capsa extract`ed once; that tree "
    f"({meta['entries']} entries, {file_bytes} bytes = {mib(file_bytes)} MiB of file content) "
    "is the input of tar|zstd and mksquashfs"
)

# 1. pack
pack = sect("pack")
capsa_at = {r["level"]: r for r in pack if r["tool"] == "capsa"}


def level_key(r):
    return (int(r["level"]) if r["level"].isdigit() else 99, r["tool"] != "capsa", r["tool"])


body = []
for r in sorted(pack, key=level_key):
    c = capsa_at.get(r["level"])
    vs_size = f"{r['size_bytes'] / c['size_bytes']:.3f}" if c else "—"
    vs_time = f"{r['median_s'] / c['median_s']:.2f}" if c else "—"
    body.append(
        [
            r["tool"],
            r["level"],
            sec(r["median_s"]),
            spread(r),
            r["size_bytes"],
            mib(r["size_bytes"]),
            f"{file_bytes / r['size_bytes']:.2f}",
            vs_size,
            vs_time,
        ]
    )
md += ["", "## 1. Pack", ""]
md.append(
    table(
        ["tool", "level", "time s (median)", "min–max s", "size bytes", "size MiB", "ratio",
         "size ÷ capsa", "time ÷ capsa"],
        body,
    )
)
md.append("")
md.append(
    f"capsa layers at level {meta['unpack_level']}: "
    + ", ".join(f"{l['role']} {mib(l['size'])} MiB ({l['entries']} entries, "
                f"{mib(l['unpacked_size'])} MiB unpacked)" for l in layers)
)

# 2. unpack
body = []
for r in sect("unpack"):
    body.append(
        [
            r["tool"],
            r["level"],
            mib(r["size_bytes"]),
            sec(r["median_s"]),
            spread(r),
            f"{file_bytes / 1e6 / r['median_s']:.0f}",
            r["entries"],
            r["note"],
        ]
    )
md += ["", "## 2. Unpack", ""]
md.append(
    table(
        ["method", "input level", "input MiB", "time s (median)", "min–max s", "MB/s unpacked",
         "entries", "integrity"],
        body,
    )
)

# 3. verify
ver = sect("verify")
floor = next((r["median_s"] for r in ver if r["tool"] == "sha256sum bundle"), None)
body = []
for r in ver:
    body.append(
        [
            r["tool"],
            mib(r["size_bytes"]),
            sec(r["median_s"]),
            spread(r),
            f"{r['median_s'] / floor:.1f}" if floor else "—",
            r["note"],
        ]
    )
md += ["", "## 3. Verify", ""]
md.append(table(["method", "input MiB", "time s (median)", "min–max s", "÷ sha256sum", "what it checks"], body))

# 4. reproducibility
body = []
for r in sect("repro"):
    body.append([r["tool"], r["level"], sec(r["median_s"]), r["size_bytes"], r["note"]])
md += ["", "## 4. Reproducibility", ""]
md.append(table(["pack", "level", "time s (1 run)", "size bytes", "sha256 (first 16)"], body))
md.append("")
md.append(f"Identical bytes (`cmp`, --threads {meta['repro_threads'].replace(' ', ' vs ')}): **{meta['repro_identical']}**")
md.append("")
md.append(f"Total run time: {meta['total_seconds']} s")

text = "\n".join(md) + "\n"
sys.stdout.write(text)
with open(md_path, "w") as f:
    f.write(text)

doc = {
    "meta": {k: (int(v) if k in ("host_cores", "runs", "unpack_level") else v)
             for k, v in meta.items()
             if k not in ("entries", "file_bytes", "total_seconds", "repro_identical", "repro_threads")},
    "input": {"entries": int(meta["entries"]), "file_bytes": file_bytes, "capsa_layers": layers},
    "total_seconds": float(meta["total_seconds"]),
}
for name in ("pack", "unpack", "verify", "repro"):
    doc[name] = [
        {k: (int(v) if k == "level" and v.isdigit() else v)
         for k, v in r.items() if k != "section" and v not in ("", None)}
        for r in sect(name)
    ]
doc["reproducible"] = {
    "threads": [int(t) for t in meta["repro_threads"].split()],
    "identical": meta["repro_identical"] == "yes",
}
with open(json_path, "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
