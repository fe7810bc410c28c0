#!/usr/bin/env python3
"""Generate tests/fixtures/hf_reference_NAME.json from Hugging Face transformers (fp32, CPU).

The fixture holds reference data that the C++ Hugging Face checkpoint loader is checked against.
It is a JSON object whose "sections" each describe one HF checkpoint folder:
  * the folder's files (sha256; sizes only for weights over 50 MB) and parsed config.json,
  * tokenizer output for the TOKENIZE_CASES of scripts/make-llamacpp-fixture.py (no BOS added),
    BOS/EOS ids, "Hello world" with special tokens added, and the rendered chat template,
  * the first --n-tokens token ids of the WikiText-2 raw test text and, from ONE fp32 forward pass
    over exactly those ids (no BOS, positions 0..n-1): per position the top-16 logits, the logits
    at 32 fixed probe ids, max |logit|, logsumexp, the log-probability of the next token, and the
    perplexity.

Without --hf-dir the folder is made from the GGUF with transformers' own GGUF loader (which
dequantizes the weights and un-permutes Q/K) and saved with save_pretrained() into --save-dir;
everything is then recorded from the saved folder, loaded back. With --hf-dir an existing folder
(e.g. one written by another converter) is recorded instead, typically into another --section;
sections already in --out are kept.

Usage:
  python3 scripts/make-hf-fixture.py \
      [--model smollm2-135m | qwen2.5-coder-0.5b | qwen2.5-coder-1.5b | PATH.gguf] \
      [--hf-dir DIR | --save-dir DIR (default ~/.cache/commvq-bench/hf/NAME-transformers)] \
      [--section transformers] [--n-tokens 320] \
      [--text data/text/wikitext-2-raw/wiki.test.raw] \
      [--out tests/fixtures/hf_reference_NAME.json] [--threads 1]
  e.g. a second section from another converter's output:
  python3 scripts/make-hf-fixture.py --hf-dir /tmp/convert-out --section convert

Requires: pip install torch==2.5.1 "transformers<5" accelerate==1.12.0 gguf numpy safetensors
tokenizers sentencepiece protobuf (the fixture records the versions it was made with; a newer
accelerate pulls in a newer torch).

The committed fixture has two sections for SmolLM2-135M: "transformers" (the folder transformers'
GGUF loader writes; its tokenizer.json keeps GPT-2's regex but not SmolLM's digit split, and it
adds <|im_start|> as BOS) and "convert" (the folder `commvq-bench convert --out DIR` writes from
the same GGUF, recorded with --hf-dir DIR --section convert).
"""

import argparse
import datetime
import hashlib
import json
import math
import os
import shlex
import sys
import time

import llamacpp_fixture_module  # scripts/llamacpp_fixture_module.py

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DEFAULT_TEXT = os.path.join(ROOT, "data", "text", "wikitext-2-raw", "wiki.test.raw")
SHARED_TEXT = os.path.join(ROOT, "..", "shared", "datasets", "text", "wikitext-2-raw", "wiki.test.raw")

WIKI_CHARS = 4000  # characters of the (\r-stripped) text that are tokenized
TOP_K = 16
N_PROBES = 32
BIG_WEIGHTS_BYTES = 50 * 1000 * 1000  # weights files above this get their size, not a sha256
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
CHAT_MESSAGES = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "What is 2+2?"},
]


LC = llamacpp_fixture_module.load()
TOKENIZE_CASES = LC.TOKENIZE_CASES
known_models = LC.known_models
resolve_model = LC.resolve_model
read_wikitext = LC.read_wikitext
sha256_file = LC.sha256_file


def model_home():
    return os.environ.get("COMMVQ_HOME") or os.path.expanduser("~/.cache/commvq-bench")


def default_out(name):
    return os.path.join(ROOT, "tests", "fixtures", "hf_reference_" + name + ".json")


def g7(x):
    """A float as float32 gives it, to 7 significant digits."""
    return float(f"{float(x):.7g}")


def folder_files(d):
    """relative path -> {"bytes": N, "sha256": hex, or null for weights over 50 MB}."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(d):
        dirnames.sort()
        for fn in sorted(filenames):
            p = os.path.join(dirpath, fn)
            rel = os.path.relpath(p, d)
            size = os.path.getsize(p)
            big = size > BIG_WEIGHTS_BYTES and fn.endswith(WEIGHT_SUFFIXES)
            out[rel] = {"bytes": size, "sha256": None if big else sha256_file(p)}
    return out


def write_fixture(path, doc):
    """Top-level keys one per line, one section key per line; per-position arrays one row a line."""
    row_keys = ("top_ids", "top_logits", "probe_logits")
    c = dict(ensure_ascii=False, separators=(",", ":"))
    lines = ["{"]
    top = list(doc.items())
    for i, (key, val) in enumerate(top):
        last = i + 1 == len(top)
        if key != "sections":
            lines.append(json.dumps(key) + ": " + json.dumps(val, ensure_ascii=False) + ("" if last else ","))
            continue
        lines.append(json.dumps(key) + ": {")
        secs = list(val.items())
        for si, (sname, sec) in enumerate(secs):
            lines.append("  " + json.dumps(sname) + ": {")
            items = list(sec.items())
            for j, (k, v) in enumerate(items):
                sep = "" if j + 1 == len(items) else ","
                if k == "tokenize":
                    lines.append("    " + json.dumps(k) + ": [")
                    for t, case in enumerate(v):
                        lines.append("      " + json.dumps(case, **c) + ("" if t + 1 == len(v) else ","))
                    lines.append("    ]" + sep)
                elif k == "wikitext":
                    lines.append("    " + json.dumps(k) + ": {")
                    sub = list(v.items())
                    for m, (wk, wv) in enumerate(sub):
                        wsep = "" if m + 1 == len(sub) else ","
                        if wk in row_keys:
                            lines.append("      " + json.dumps(wk) + ": [")
                            for r, row in enumerate(wv):
                                lines.append("        " + json.dumps(row, **c) + ("" if r + 1 == len(wv) else ","))
                            lines.append("      ]" + wsep)
                        else:
                            lines.append("      " + json.dumps(wk) + ": " + json.dumps(wv, **c) + wsep)
                    lines.append("    }" + sep)
                else:
                    lines.append("    " + json.dumps(k) + ": " + json.dumps(v, **c) + sep)
            lines.append("  }" + ("" if si + 1 == len(secs) else ","))
        lines.append("}" + ("" if last else ","))
    lines.append("}")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with open(tmp, encoding="utf-8") as f:
        json.load(f)  # validate before replacing
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", help="known model name or GGUF path")
    ap.add_argument("--hf-dir", default=None, help="record this existing HF folder (no GGUF conversion)")
    ap.add_argument("--save-dir", default=None, help="where the GGUF-made HF folder is saved")
    ap.add_argument("--section", default="transformers")
    ap.add_argument("--n-tokens", type=int, default=320)
    ap.add_argument("--text", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--kv-round", choices=["none", "fp16"], default="none",
                    help="fp16: keys (after RoPE) and values rounded to fp16 before attention, as the "
                    "engine's fp16 KV cache stores them (queries and everything else stay fp32)")
    args = ap.parse_args()

    name, gguf_path = resolve_model(args.model)
    if name is None:
        name = os.path.splitext(os.path.basename(gguf_path))[0]
    if args.out is None:
        args.out = default_out(name)
    if args.text is None:
        args.text = DEFAULT_TEXT if os.path.isfile(DEFAULT_TEXT) else SHARED_TEXT
    if not os.path.isfile(args.text):
        print(f"error: text not found: {args.text} (scripts/get-data.sh fetches it)", file=sys.stderr)
        return 2
    if args.hf_dir is None and not os.path.isfile(gguf_path):
        print(f"error: model not found: {gguf_path} (scripts/get-model.sh NAME installs it)", file=sys.stderr)
        return 2
    if args.hf_dir is not None and not os.path.isdir(args.hf_dir):
        print(f"error: not a folder: {args.hf_dir}", file=sys.stderr)
        return 2

    try:
        import numpy as np
        import tokenizers
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        print(
            f"error: cannot import torch/transformers/numpy ({e}); install with: pip install "
            'torch "transformers<5" gguf numpy safetensors tokenizers sentencepiece protobuf',
            file=sys.stderr,
        )
        return 3

    torch.set_num_threads(args.threads)
    t_start = time.time()

    # ---- the HF folder ----
    if args.hf_dir is not None:
        hf_dir = args.hf_dir
        made_from = {"kind": "hf_dir"}
    else:
        hf_dir = args.save_dir or os.path.join(model_home(), "hf", name + "-transformers")
        gguf_dir, gguf_name = os.path.split(os.path.abspath(gguf_path))
        print(f"converting {gguf_path} with transformers' GGUF loader -> {hf_dir}", file=sys.stderr)
        tok0 = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
        model0 = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, torch_dtype=torch.float32)
        os.makedirs(hf_dir, exist_ok=True)
        tok0.save_pretrained(hf_dir)
        model0.save_pretrained(hf_dir)
        del tok0, model0
        made_from = {
            "kind": "gguf",
            "gguf": gguf_name,
            "gguf_sha256": sha256_file(gguf_path),
            "how": "AutoTokenizer/AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=..., "
            "torch_dtype=float32) then save_pretrained(hf_dir)",
        }

    # Everything below describes the folder, loaded back from disk.
    tok = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    if args.kv_round == "fp16":
        # transformers' eager attention receives post-RoPE keys; round them and the values.
        attn_module = sys.modules[type(model.model.layers[0].self_attn).__module__]
        plain_attention = attn_module.eager_attention_forward

        def fp16_kv_attention(module, query, key, value, *a, **kw):
            return plain_attention(module, query, key.half().float(), value.half().float(), *a, **kw)

        attn_module.eager_attention_forward = fp16_kv_attention
    with open(os.path.join(hf_dir, "config.json"), encoding="utf-8") as f:
        config = json.load(f)

    # ---- tokenizer ----
    def encode(text, special):
        return tok(text, add_special_tokens=False, split_special_tokens=not special)["input_ids"]

    probe = "<|im_start|>user"
    n_sp, n_plain = len(encode(probe, True)), len(encode(probe, False))
    split_ok = n_plain > n_sp
    print(
        f"split_special_tokens check on {probe!r}: special -> {encode(probe, True)}, "
        f"plain -> {encode(probe, False)}",
        file=sys.stderr,
    )
    if not split_ok:
        print("error: split_special_tokens had no effect with this tokenizer/transformers", file=sys.stderr)
        return 4

    tokenize = [{"text": s, "special": sp, "ids": encode(s, sp)} for s, sp in TOKENIZE_CASES]
    try:
        chat = tok.apply_chat_template(CHAT_MESSAGES, tokenize=False, add_generation_prompt=True)
        chat_error = None
    except Exception as e:  # no chat template in the folder
        chat, chat_error = None, f"{type(e).__name__}: {e}"

    # ---- wikitext: one fp32 forward pass ----
    n = args.n_tokens
    text = read_wikitext(args.text)[:WIKI_CHARS]
    ids_all = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids_all) >= n, f"only {len(ids_all)} tokens in the first {WIKI_CHARS} characters, need {n}"
    ids = [int(t) for t in ids_all[:n]]
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor([ids], dtype=torch.long),
            position_ids=torch.arange(n, dtype=torch.long)[None],
            use_cache=False,
        )
    logits = out.logits[0].to(torch.float32).numpy()  # [n, vocab]
    vocab = logits.shape[1]
    probe_ids = sorted(int(v) for v in np.random.default_rng(0).choice(vocab, N_PROBES, replace=False))

    x = logits.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    lse = (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))[:, 0]
    tgt = np.asarray(ids[1:], dtype=np.int64)
    target_logprob = x[np.arange(n - 1), tgt] - lse[: n - 1]
    ppl = math.exp(-float(target_logprob.mean()))
    # Top-k: descending logit; ties broken by the smaller id (stable sort of -logit).
    order = np.argsort(-logits, axis=-1, kind="stable")[:, :TOP_K]

    wikitext = {
        "source": os.path.basename(args.text),
        "preprocess": f"read bytes, remove every \\r, decode UTF-8, first {WIKI_CHARS} characters, "
        "tokenizer(text, add_special_tokens=False), first n ids",
        "text_chars": len(text),
        "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),  # of those characters
        "n_tokens": n,
        "vocab": vocab,
        "forward": "one fp32 CPU forward pass over exactly `tokens` (no BOS), position_ids 0..n-1, "
        "attn_implementation=eager; floats are float32 values printed with 7 significant digits",
        "kv_rounding": args.kv_round,
        "tokens": ids,
        "probe_ids": probe_ids,
        "perplexity": g7(ppl),
        "max_abs_logit": [g7(v) for v in np.abs(logits).max(axis=-1)],
        "logsumexp": [g7(v) for v in lse],
        "target_logprob": [g7(v) for v in target_logprob],
        "top_ids": [[int(t) for t in row] for row in order],
        "top_logits": [[g7(logits[p, t]) for t in order[p]] for p in range(n)],
        "probe_logits": [[g7(logits[p, t]) for t in probe_ids] for p in range(n)],
    }

    section = {
        "hf_dir": hf_dir,
        "made_from": made_from,
        "made_with": "python3 " + " ".join(shlex.quote(a) for a in sys.argv),
        "date": datetime.date.today().isoformat(),
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "tokenizers_version": tokenizers.__version__,
        "tokenizer_class": type(tok).__name__,
        "model_class": type(model).__name__,
        "config": config,
        "files": folder_files(hf_dir),
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "with_special": tok("Hello world", add_special_tokens=True)["input_ids"],
        "tokenize_note": "ids = tokenizer(text, add_special_tokens=False, "
        "split_special_tokens=not special)['input_ids']",
        "tokenize": tokenize,
        "chat_messages": CHAT_MESSAGES,
        "chat": chat,
        "chat_error": chat_error,
        "wikitext": wikitext,
    }

    # ---- write: replace this section, keep the others ----
    doc = None
    if os.path.isfile(args.out):
        with open(args.out, encoding="utf-8") as f:
            doc = json.load(f)
    if not isinstance(doc, dict) or not isinstance(doc.get("sections"), dict):
        doc = {
            "description": "Hugging Face transformers reference data for the C++ HF checkpoint loader; "
            "made by scripts/make-hf-fixture.py. One section per HF folder.",
            "model": name,
            "sections": {},
        }
    doc["sections"][args.section] = section
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_fixture(args.out, doc)

    # ---- summary ----
    print(f"section {args.section!r}: {hf_dir} (transformers {transformers.__version__}, torch {torch.__version__})", file=sys.stderr)
    print(f"bos={tok.bos_token_id} eos={tok.eos_token_id} with_special={section['with_special']}", file=sys.stderr)
    print(f"perplexity over {n - 1} predictions: {ppl:.4f}", file=sys.stderr)
    for p in (0, 1, n // 2, n - 1):
        t1 = int(order[p, 0])
        print(f"  pos {p}: token {ids[p]} -> top-1 {t1} {tok.decode([t1])!r} ({logits[p, t1]:.4f})", file=sys.stderr)
    print(
        f"files: {len(section['files'])}, vocab {vocab}, "
        f"wrote {args.out} ({os.path.getsize(args.out)} bytes) in {time.time() - t_start:.1f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
