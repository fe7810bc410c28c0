#!/usr/bin/env python3
"""Task scores with 95% intervals and paired differences from a baseline method, from a grid's records.

    python3 scripts/paired-scores.py RESULTS_DIR TASK [--baseline fp16] [--key score]

For each method of RESULTS_DIR/runs/TASK: n, the mean score x100 with its 95% Wilson interval (binary
scores) or normal interval, and the paired difference from the baseline over the samples both have
(mean of per-sample differences +- 1.96 sd/sqrt(n), x100). Prints a Markdown table.
"""
import argparse
import glob
import json
import math
import os
import sys


def records(run_dir):
    out = {}
    for f in sorted(glob.glob(os.path.join(run_dir, "samples*.jsonl"))):
        for line in open(f, encoding="utf-8"):
            line = line.strip()
            if line:
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:  # a torn last line (killed mid-write)
                    continue
                out[r["id"]] = r
    return out


def wilson(k, n, z=1.96):
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (c - h, c + h)


def mean_interval(xs, z=1.96):
    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, (float("nan"), float("nan"))
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    return m, (m - z * sd / math.sqrt(n), m + z * sd / math.sqrt(n))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("task")
    ap.add_argument("--baseline", default="fp16")
    ap.add_argument("--key", default="score", help="record field to score (e.g. extra.flexible)")
    a = ap.parse_args()
    base_dir = os.path.join(a.results, "runs", a.task)
    if not os.path.isdir(base_dir):
        sys.exit(f"{base_dir}: no such run folder")

    def value(r):
        v = r
        for part in a.key.split("."):
            v = v[part]
        return float(v)

    runs = {m: records(os.path.join(base_dir, m)) for m in sorted(os.listdir(base_dir))}
    if a.baseline not in runs:
        sys.exit(f"{base_dir}: no '{a.baseline}' run to pair with")
    base = runs[a.baseline]
    print(f"| method | n | {a.key} x100 [95%] | minus {a.baseline} (paired n) [95%] |")
    print("|---|---:|---:|---:|")
    for m, recs in runs.items():
        xs = [value(r) for r in recs.values()]
        if not xs:
            continue
        binary = all(x in (0.0, 1.0) for x in xs)
        mean = sum(xs) / len(xs)
        lo, hi = wilson(sum(xs), len(xs)) if binary else mean_interval(xs)[1]
        cell = f"{100 * mean:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
        if m == a.baseline:
            diff = "—"
        else:
            common = sorted(set(recs) & set(base))
            ds = [value(recs[i]) - value(base[i]) for i in common]
            if ds:
                dm, (dlo, dhi) = mean_interval(ds)
                diff = f"{100 * dm:+.1f} ({len(ds)}) [{100 * dlo:+.1f}, {100 * dhi:+.1f}]"
            else:
                diff = "no common samples"
        print(f"| {m} | {len(xs)} | {cell} | {diff} |")


if __name__ == "__main__":
    main()
