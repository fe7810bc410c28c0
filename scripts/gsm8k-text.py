#!/usr/bin/env python3
"""Writes GSM8K train items as one text, in lm-eval's gsm8k shot format ("Question: q\\nAnswer: a\\n\\n",
calculator annotations kept), for teacher-forced diagnostics on GSM8K-like text
(`commvq-bench attention-error --text OUT`). Usage: gsm8k-text.py OUT [N_ITEMS] (default 40)."""
import json
import os
import sys

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 40
data = os.environ.get("COMMVQ_DATA", os.path.join(os.path.dirname(__file__), "..", "data"))
with open(os.path.join(data, "gsm8k", "train.jsonl")) as f:
    items = [json.loads(line) for _, line in zip(range(n), f)]
with open(out, "w") as f:
    for it in items:
        f.write(f"Question: {it['question']}\nAnswer: {it['answer']}\n\n")
print(f"{out}: {len(items)} GSM8K train items")
