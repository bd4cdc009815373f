#!/usr/bin/env python3
"""Every target of the bench/*.sh scripts in one table, from their JSON in bench/out/.

usage: summary.py [OUT_DIR]   (default bench/out); prints Markdown and writes OUT/summary.md
and OUT/summary.json. A script that has not been run is listed as not run.
"""
import json
import os
import sys

SCRIPTS = ["start", "scale", "store", "flush", "cold", "pack"]
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")

body, doc = [], {}
for name in SCRIPTS:
    path = os.path.join(out, f"{name}.json")
    if not os.path.exists(path):
        body.append([f"`{name}.sh`", "not run", "", "", "", ""])
        continue
    with open(path) as f:
        d = json.load(f)
    doc[name] = {"meta": d["meta"], "targets": d["targets"]}
    for t in d["targets"]:
        unit = t["unit"]
        fmt = (lambda v: f"{v:.2f}×") if unit == "×" else (lambda v, u=unit: f"{v:.1f} {u}")
        value = "n/a" if t["value"] is None else fmt(t["value"])
        verdict = "—" if t["met"] is None else ("met" if t["met"] else "**missed**")
        body.append([f"`{name}.sh`", t["target"], value, f"≤ {fmt(t['limit'])}", verdict,
                     f"{d['meta']['date']}, {d['meta']['runs']} rounds"])

esc = lambda c: str(c).replace("|", "\\|")
head = ["script", "target", "measured", "limit", "verdict", "run"]
lines = ["## Targets of every script", "",
         "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
text = "\n".join(lines) + "\n"
sys.stdout.write(text)
with open(os.path.join(out, "summary.md"), "w") as f:
    f.write(text)
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
