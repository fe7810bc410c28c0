#!/usr/bin/env python3
"""Copies a task's complete records (the samples every method has) from a grid folder that may still be
running into a results folder to commit, in sample order, with each method's run.json (and its
summary files once the run has written them).

    python3 scripts/dev/snapshot-grid.py SRC DST [TASK]   (TASK default: gsm8k)

A torn last line (a record being written) is skipped."""
import json, os, shutil, sys
src, dst = sys.argv[1:3]
task = sys.argv[3] if len(sys.argv) > 3 else "gsm8k"
runs = os.path.join(src, "runs", task)
methods = sorted(os.listdir(runs))
recs = {}
for m in methods:
    d = {}
    for line in open(os.path.join(runs, m, "samples.jsonl"), encoding="utf-8"):
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        d[r["id"]] = (r["index"], line if line.endswith("\n") else line + "\n")
    recs[m] = d
common = set.intersection(*(set(d) for d in recs.values()))
for m in methods:
    out = os.path.join(dst, "runs", task, m)
    os.makedirs(out, exist_ok=True)
    rows = sorted((recs[m][i] for i in common), key=lambda t: t[0])
    with open(os.path.join(out, "samples.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(line for _, line in rows)
    shutil.copy(os.path.join(runs, m, "run.json"), os.path.join(out, "run.json"))
    for f in os.listdir(os.path.join(runs, m)):  # a finished run's summaries (sample limit, timing)
        if f.startswith("summary") and f.endswith(".json"):
            shutil.copy(os.path.join(runs, m, f), os.path.join(out, f))
print(f"{task}: {len(common)} samples x {len(methods)} methods")
