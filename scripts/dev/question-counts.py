#!/usr/bin/env python3
"""Per sample against a baseline method: how many samples each method loses (lower score) and gains.

    python3 scripts/dev/question-counts.py RESULTS_DIR [TASK] [BASELINE]   (defaults: gsm8k, fp16)"""
import json, os, sys
d = sys.argv[1]
task = sys.argv[2] if len(sys.argv) > 2 else "gsm8k"
baseline = sys.argv[3] if len(sys.argv) > 3 else "fp16"
base = os.path.join(d, "runs", task)
def load(m):
    return {json.loads(l)["id"]: json.loads(l)["score"] for l in open(os.path.join(base, m, "samples.jsonl"))}
fp = load(baseline)
for m in sorted(os.listdir(base)):
    if m == baseline: continue
    r = load(m)
    ids = [i for i in r if i in fp]
    lost = sum(1 for i in ids if fp[i] > r[i]); gained = sum(1 for i in ids if fp[i] < r[i])
    print(f"{m:12s} n={len(ids)} same={len(ids) - lost - gained} lost={lost} gained={gained}")
