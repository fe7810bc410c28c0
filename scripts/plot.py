#!/usr/bin/env python3
"""PNG plots for `commvq-bench tables`: reads the merged summary.json it writes and draws

  <group>.png          score per task instance (x) and KV method (bars), one figure per task group
  <group>_cells.png    NIAH heatmaps (depth x context length) or retrieval accuracy by depth
  memory.png           KV bits/element by method, and KV bytes vs context length
  quality_vs_bits.png  each group's headline score against the method's KV bits/element

Usage: python3 scripts/plot.py --summary RESULTS/tables/summary.json --out RESULTS/tables
Needs matplotlib (pip install matplotlib). Missing or partial runs are left out of the plots.
"""
import argparse
import json
import math
import os
import re
import sys

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:  # the C++ side checks first; this is for direct use
    sys.exit("plot.py needs matplotlib: pip install matplotlib")


def natural_key(s):
    return [float(t) if re.fullmatch(r"[0-9.]+", t) else t for t in re.split(r"([0-9.]+)", str(s)) if t]


def usable(run):
    return run.get("status") in ("complete", "partial") and isinstance(run.get("score"), (int, float))


def column_label(run):
    sweep = run.get("sweep") or {}
    if sweep:
        return ", ".join(str(v) for v in sweep.values())
    return run.get("task", "")


def save(fig, out, name, written):
    path = os.path.join(out, name)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)


def plot_groups(summary, out, written):
    runs = summary["runs"]
    methods = summary.get("methods") or sorted({r["method"] for r in runs})
    for group in summary.get("groups") or sorted({r["group"] for r in runs}):
        gruns = [r for r in runs if r.get("group") == group and usable(r)]
        if not gruns:
            continue
        family = gruns[0].get("family", "")
        if family == "memory":
            continue
        instances = sorted({r["task"] for r in gruns}, key=natural_key)
        labels = {r["task"]: column_label(r) for r in gruns}
        present = [m for m in methods if any(r["method"] == m for r in gruns)]
        fig, ax = plt.subplots(figsize=(min(14, max(5, 0.35 * len(instances) * max(1, len(present)) + 2)), 3.8))
        width = 0.8 / max(1, len(present))
        for k, m in enumerate(present):
            xs, ys = [], []
            for i, inst in enumerate(instances):
                hit = [r for r in gruns if r["task"] == inst and r["method"] == m]
                if hit:
                    xs.append(i + (k - (len(present) - 1) / 2) * width)
                    ys.append(hit[0]["score"])
            ax.bar(xs, ys, width=width, label=m)
        ax.set_xticks(range(len(instances)))
        ax.set_xticklabels([labels[i] for i in instances], rotation=30 if len(instances) > 4 else 0, ha="right" if len(instances) > 4 else "center")
        metrics = {r.get("metric", "score") for r in gruns}
        metric = metrics.pop() if len(metrics) == 1 else "score (each task's metric)"
        better = "higher is better" if gruns[0].get("higher_is_better", True) else "lower is better"
        # Perplexities span orders of magnitude (a collapsed 1-bit method beside fp16): log axis,
        # each bar labelled with its value so close ones stay readable.
        scores = [r["score"] for r in gruns if r.get("score") is not None]
        if family == "perplexity" and scores and min(scores) > 0:
            if max(scores) / min(scores) > 10:
                ax.set_yscale("log")
            for c in ax.containers:
                ax.bar_label(c, fmt="%.1f", fontsize=7)
        ax.set_ylabel(f"{metric} ({better})")
        ax.set_title(group)
        ax.legend(fontsize=8)
        save(fig, out, f"{group}.png", written)


def plot_cells(summary, out, written):
    runs = [r for r in summary["runs"] if usable(r) and r.get("breakdown") and r.get("family") != "memory"]
    order = {m: i for i, m in enumerate(summary.get("methods") or [])}
    by_task = {}
    for r in runs:
        by_task.setdefault(r["task"], []).append(r)
    for task, truns in by_task.items():
        truns.sort(key=lambda r: order.get(r["method"], len(order)))
        keys = sorted({k for r in truns for k in r["breakdown"]}, key=natural_key)
        two_d = all(re.fullmatch(r"len=\d+,depth=[0-9.]+", k) for k in keys)
        if two_d:
            lengths = sorted({int(re.match(r"len=(\d+)", k).group(1)) for k in keys})
            depths = sorted({float(re.search(r"depth=([0-9.]+)", k).group(1)) for k in keys})
            fig, axes = plt.subplots(1, len(truns), figsize=(2.2 + 1.2 * len(lengths) * len(truns), 3.8), squeeze=False)
            for col, (ax, r) in enumerate(zip(axes[0], truns)):
                grid = [[math.nan] * len(lengths) for _ in depths]
                for k, v in r["breakdown"].items():
                    L = int(re.match(r"len=(\d+)", k).group(1))
                    d = float(re.search(r"depth=([0-9.]+)", k).group(1))
                    grid[depths.index(d)][lengths.index(L)] = v
                im = ax.imshow(grid, vmin=0, vmax=100, cmap="RdYlGn", aspect="auto")
                ax.set_xticks(range(len(lengths)))
                ax.set_xticklabels(lengths)
                ax.set_yticks(range(len(depths)))
                ax.set_yticklabels([f"{100 * d:.0f}%" for d in depths] if col == 0 else [])
                ax.set_xlabel("context tokens")
                if col == 0:
                    ax.set_ylabel("needle depth")
                ax.set_title(r["method"])
            fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label=truns[0].get("metric", "score"))
            fig.suptitle(task)
            fig.savefig(os.path.join(out, f"{task}_cells.png"), dpi=120)
            plt.close(fig)
            written.append(os.path.join(out, f"{task}_cells.png"))
        else:
            fig, ax = plt.subplots(figsize=(5.5, 3.4))
            for r in truns:
                ax.plot(range(len(keys)), [r["breakdown"].get(k, math.nan) for k in keys], marker="o", label=r["method"])
            ax.set_xticks(range(len(keys)))
            ax.set_xticklabels([k.replace("depth=", "") for k in keys])
            ax.set_xlabel("needle depth" if all(k.startswith("depth=") for k in keys) else "cell")
            ax.set_ylabel(truns[0].get("metric", "score"))
            ax.set_ylim(-5, 105)
            ax.set_title(task)
            ax.legend(fontsize=8)
            save(fig, out, f"{task}_cells.png", written)


def method_bits(summary):
    bits = {}
    for r in summary["runs"]:
        if r.get("family") == "memory" and usable(r):
            bits[r["method"]] = r["score"]
    for r in summary["runs"]:
        fp = r.get("kv_footprint") or {}
        if r["method"] not in bits and usable(r) and "bits_per_element" in fp:
            bits[r["method"]] = fp["bits_per_element"]
    return bits


def plot_memory(summary, out, written):
    mem = [r for r in summary["runs"] if r.get("family") == "memory" and usable(r)]
    if not mem:
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    a1.bar([r["method"] for r in mem], [r["score"] for r in mem], color="tab:blue")
    a1.set_ylabel("KV bits per element")
    a1.set_title("KV footprint at the longest length")
    for r in mem:
        cells = r.get("breakdown") or {}
        xs = sorted(cells, key=natural_key)
        ys = []
        for L in xs:
            c = cells[L]
            b = c.get("projected_bytes", c.get("measured_bytes"))
            ys.append(b / 2**20 if b is not None else math.nan)
        a2.plot([int(x) for x in xs], ys, marker="o", label=r["method"])
    a2.set_xscale("log", base=2)
    a2.set_yscale("log")
    a2.set_xlabel("context tokens")
    a2.set_ylabel("KV cache MiB")
    a2.set_title("KV bytes vs context")
    a2.legend(fontsize=8)
    save(fig, out, "memory.png", written)


def plot_quality_vs_bits(summary, out, written):
    bits = method_bits(summary)
    if len(bits) < 2:
        return
    groups = {}
    for r in summary["runs"]:
        # Scores on a 0-100 scale only (perplexity and the footprint itself are left out).
        if usable(r) and r.get("family") not in ("memory", "perplexity") and r["method"] in bits:
            groups.setdefault(r["group"], {}).setdefault(r["method"], []).append(r["score"])
    if not groups:
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))
    labelled = set()
    for g, per_method in groups.items():
        ms = sorted(per_method, key=lambda m: bits[m])
        ys = [sum(per_method[m]) / len(per_method[m]) for m in ms]
        ax.plot([bits[m] for m in ms], ys, marker="o", label=g)
        for m, y in zip(ms, ys):
            if m not in labelled:  # name each method once, at its first point
                ax.annotate(m, (bits[m], y), fontsize=7, xytext=(3, 3), textcoords="offset points")
                labelled.add(m)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("KV bits per element")
    ax.set_ylabel("score (group mean)")
    ax.set_title("quality vs KV size")
    ax.legend(fontsize=7)
    save(fig, out, "quality_vs_bits.png", written)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--summary", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.summary, encoding="utf-8") as f:
        summary = json.load(f)
    os.makedirs(args.out, exist_ok=True)
    written = []
    plot_groups(summary, args.out, written)
    plot_cells(summary, args.out, written)
    plot_memory(summary, args.out, written)
    plot_quality_vs_bits(summary, args.out, written)
    print(f"plot.py: wrote {len(written)} PNG files to {args.out}")


if __name__ == "__main__":
    main()
