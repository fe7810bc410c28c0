#!/usr/bin/env python3
"""Where each method's GSM8K answers leave fp16's: per method, how many answers are identical to fp16's
and, for the others, the median number of characters before the first difference.

    python3 scripts/gsm8k-divergence.py RESULTS_DIR [EXTRA_RESULTS_DIR ...]

Methods are read from RESULTS_DIR/runs/gsm8k/* (fp16 among them) and from the extra folders (e.g. an
ablation); only questions present in every folder are compared."""
import json
import os
import statistics
import sys


def load(path):
    out = {}
    for line in open(path, encoding="utf-8"):
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        out[r["id"]] = r.get("raw_output", r["prediction"])
    return out


dirs = sys.argv[1:]
runs = {}
for d in dirs:
    base = os.path.join(d, "runs", "gsm8k")
    for m in sorted(os.listdir(base)):
        runs[m] = load(os.path.join(base, m, "samples.jsonl"))
fp = runs.pop("fp16")
ids = set(fp).intersection(*(set(r) for r in runs.values()))
print(f"{len(ids)} questions in every folder\n")
print("| method | identical to fp16 | median characters before the first difference | differ within 100 characters |")
print("|---|---:|---:|---:|")
for m, r in runs.items():
    prefix = []
    for i in ids:
        a, b = fp[i], r[i]
        if a == b:
            continue
        k = 0
        while k < min(len(a), len(b)) and a[k] == b[k]:
            k += 1
        prefix.append(k)
    same = len(ids) - len(prefix)
    early = sum(1 for k in prefix if k < 100)
    med = statistics.median(prefix) if prefix else float("nan")
    print(f"| {m} | {same} | {med:.0f} | {early} |")
