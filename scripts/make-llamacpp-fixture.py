#!/usr/bin/env python3
"""Generate tests/fixtures/llamacpp_reference.json from llama.cpp (llama-cpp-python).

The fixture holds reference data that the C++ implementation is checked against:
  * tokenizer output for a set of tricky strings (no BOS added),
  * the first 8192 token ids of the WikiText-2 raw test text,
  * per-window NLL sums / argmax ids / perplexity over 4 x 2048-token windows,
  * a small spot check of raw logits.

Usage:
  python3 scripts/make-llamacpp-fixture.py \
      [--model smollm2-135m | qwen2.5-coder-0.5b | qwen2.5-coder-1.5b | PATH.gguf] \
      [--text data/text/wikitext-2-raw/wiki.test.raw] \
      [--out tests/fixtures/llamacpp_reference[_NAME].json] [--threads 2]

Requires: pip install llama-cpp-python numpy. The fixtures record the CMAKE_ARGS the package was
built with ($LLAMA_CPP_CMAKE_ARGS, as you pass them to pip):
  * llamacpp_reference.json (SmolLM2-135M):
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=ON -DGGML_FMA=ON -DGGML_F16C=ON"
  * llamacpp_reference_qwen2.5-coder-*.json: the same plus -DGGML_AVX512_VNNI=ON
    -DGGML_AVX512_BF16=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX_VNNI=ON -DGGML_BMI2=ON, and AMX off
    (llama.cpp 0.3.36's AMX matmul crashes with SIGSEGV on the machine the fixtures were made on).
  pip install llama-cpp-python==0.3.36 numpy
"""

import argparse
import hashlib
import json
import math
import os
import shlex
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DEFAULT_TEXT = os.path.join(ROOT, "data", "text", "wikitext-2-raw", "wiki.test.raw")


def known_models():
    """name -> file, from datasets/models.tsv (what scripts/get-model.sh installs)."""
    models = {}
    with open(os.path.join(ROOT, "datasets", "models.tsv"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            cols = line.rstrip("\n").split("\t")
            models[cols[0]] = cols[1]
    return models


def resolve_model(arg):
    """A known model's name -> (name, its file in the model cache); a path -> (None, path)."""
    models = known_models()
    if arg in models:
        home = os.environ.get("COMMVQ_HOME") or os.path.expanduser("~/.cache/commvq-bench")
        return arg, os.path.join(home, "models", models[arg])
    return None, arg


def default_out(name):
    suffix = "" if name in (None, "smollm2-135m") else "_" + name
    return os.path.join(ROOT, "tests", "fixtures", "llamacpp_reference" + suffix + ".json")

N_WINDOWS = 4
WINDOW = 2048
N_FIRST_TOKENS = 8192
LOGITS_HEAD_POS = 8
LOGITS_HEAD_VALS = 16
WIKI_SNIPPET_CHARS = 2000

# (text, special) pairs. special=True means special tokens like <|im_start|> are parsed.
TOKENIZE_CASES = [
    ("Hello world", False),
    ("The quick brown fox jumps over the lazy dog.", False),
    (" leading space", False),
    ("trailing space ", False),
    ("multiple   spaces    between     words", False),
    ("   ", False),
    ("line one\nline two\n", False),
    ("para one\n\n\npara two", False),
    ("\n\n\n", False),
    ("col1\tcol2\t\tcol3", False),
    (
        "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
        False,
    ),
    (
        "#include <vector>\nint main() {\n  std::vector<int> v{1, 2, 3};\n"
        "  for (auto& x : v) x *= 2;\n  return v[0] != 2;\n}\n",
        False,
    ),
    ("12345678", False),
    ("3.14159", False),
    ("1,000,000", False),
    ("In 2023, 42 of 100 tests passed.", False),
    ("don't I'LL we've they're it's", False),
    ("Wait... what?!?! (yes) -- ok; [x] {y} <z> @#$%^&*", False),
    ("café naïve résumé", False),
    ("日本語のテキスト", False),
    ("你好，世界！这是一个测试。", False),
    ("def 计算(x):  # 返回平方\n    return x * x\n", False),
    ("한국어 문장입니다.", False),
    ("👍🏽 🎉", False),
    ("Привет, мир!", False),
    ("مرحبا بالعالم", False),
    ("<|im_start|>user\nHi<|im_end|>\n", True),
    (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
        True,
    ),
    # Same markup without special parsing: the markers must be split as plain text.
    ("<|im_start|>user\nHi<|im_end|>\n", False),
]


def read_wikitext(path):
    with open(path, "rb") as f:
        raw = f.read()
    return raw.replace(b"\r", b"").decode("utf-8")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def log_softmax_f64(logits):
    import numpy as np

    x = logits.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", help="known model name or GGUF path")
    ap.add_argument("--text", default=DEFAULT_TEXT)
    ap.add_argument("--out", default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    name, args.model = resolve_model(args.model)
    if args.out is None:
        args.out = default_out(name)
    if not os.path.isfile(args.model):
        print(f"error: model not found: {args.model} (scripts/get-model.sh NAME installs it)", file=sys.stderr)
        return 2

    try:
        import llama_cpp
        import numpy as np
    except ImportError as e:
        print(
            f"error: cannot import llama_cpp/numpy ({e}); "
            "install with: pip install llama-cpp-python numpy",
            file=sys.stderr,
        )
        return 3

    t_start = time.time()
    llm = llama_cpp.Llama(
        model_path=args.model,
        n_ctx=WINDOW,
        n_batch=512,
        n_ubatch=512,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        logits_all=True,
        flash_attn=False,
        verbose=False,
    )
    md = llm.metadata
    n_vocab = llm.n_vocab()

    def tok(text, special):
        return llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    # ---- tokenizer cases ----
    text = read_wikitext(args.text)
    tokenize = []
    for s, special in TOKENIZE_CASES:
        tokenize.append({"text": s, "special": special, "ids": tok(s, special)})
    snippet = text[:WIKI_SNIPPET_CHARS]
    tokenize.append({"text": snippet, "special": False, "ids": tok(snippet, False)})

    # ---- wikitext ----
    all_ids = tok(text, False)
    ids = all_ids[:N_FIRST_TOKENS]
    assert len(ids) == N_FIRST_TOKENS, len(ids)

    windows = []
    total_nll = 0.0
    total_scored = 0
    logits_head = None
    for w in range(N_WINDOWS):
        wt = ids[w * WINDOW : (w + 1) * WINDOW]
        llm.reset()
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)  # fresh KV cache for every window
        llm.eval(wt)
        logits = np.array(llm.scores[:WINDOW, :], dtype=np.float32, copy=True)
        if w == 0:
            logits_head = [
                [float(v) for v in logits[p, :LOGITS_HEAD_VALS]]
                for p in range(LOGITS_HEAD_POS)
            ]
        tgt = np.asarray(wt[1:], dtype=np.int64)
        # Rows in blocks: a float64 log-softmax of 2048 x 151,936 logits would need 2.5 GB at once.
        nll = np.empty(WINDOW - 1, dtype=np.float64)
        for r0 in range(0, WINDOW - 1, 128):
            r1 = min(WINDOW - 1, r0 + 128)
            lsm = log_softmax_f64(logits[r0:r1])
            nll[r0:r1] = -lsm[np.arange(r1 - r0), tgt[r0:r1]]
        top1 = logits[: WINDOW - 1].argmax(axis=-1)
        nll_sum = float(nll.sum())
        windows.append(
            {
                "start": w * WINDOW,
                "nll_sum": nll_sum,
                "n_scored": WINDOW - 1,
                "ppl": math.exp(nll_sum / (WINDOW - 1)),
                "top1_agree": float((top1 == tgt).mean()),
                "top1": [int(t) for t in top1],
            }
        )
        total_nll += nll_sum
        total_scored += WINDOW - 1
        print(
            f"window {w}: nll_sum={nll_sum:.4f} ppl={windows[-1]['ppl']:.4f}",
            file=sys.stderr,
        )

    ppl = math.exp(total_nll / total_scored)
    print(f"perplexity over {total_scored} tokens: {ppl:.4f}", file=sys.stderr)

    add_bos_meta = md.get("tokenizer.ggml.add_bos_token")
    out = {
        "llama_cpp_python_version": llama_cpp.__version__,
        "model": os.path.basename(args.model),
        "model_sha256": sha256_file(args.model),
        "made_with": "python3 "
        + " ".join(shlex.quote(a) for a in sys.argv)
        + "  [llama-cpp-python built with CMAKE_ARGS=\""
        + os.environ.get("LLAMA_CPP_CMAKE_ARGS", "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=ON -DGGML_FMA=ON -DGGML_F16C=ON")
        + "\"; CPU backend, f16 KV cache,"
        " flash_attn off, n_ctx=2048, n_batch=n_ubatch=512, threads="
        + str(args.threads)
        + "]",
        "system_info": llama_cpp.llama_print_system_info().decode("utf-8", "replace"),
        "n_vocab": n_vocab,
        "add_bos_token": bool(llm._model.add_bos_token()),
        "add_bos_token_metadata": add_bos_meta,
        "bos_token_id": llm.token_bos(),
        "eos_token_id": llm.token_eos(),
        "tokenizer_pre": md.get("tokenizer.ggml.pre"),
        "tokenize_note": "ids from llama_tokenize(add_bos=False); 'special' = parse special tokens",
        "tokenize": tokenize,
        "wikitext": {
            "source": os.path.basename(args.text),
            "preprocess": "read bytes, remove every \\r, decode UTF-8",
            "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "text_chars": len(text),
            "n_tokens_total": len(all_ids),
            "token_ids_first_8192": ids,
            "window": WINDOW,
            "scoring": "per window (fresh KV cache): for i in 0..2046, "
            "nll += -log_softmax(logits[i])[tok[i+1]] (float64); top1 = argmax(logits[i])",
            "windows": windows,
            "nll_total": total_nll,
            "n_scored_total": total_scored,
            "perplexity": ppl,
            "logits_head": logits_head,
        },
    }

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        # One top-level key / tokenize case per line; big lists stay on one line.
        f.write("{\n")
        items = list(out.items())
        for k, (key, val) in enumerate(items):
            sep = ",\n" if k + 1 < len(items) else "\n"
            if key == "tokenize":
                f.write(json.dumps(key) + ": [\n")
                for j, case in enumerate(val):
                    f.write("  " + json.dumps(case, ensure_ascii=False))
                    f.write(",\n" if j + 1 < len(val) else "\n")
                f.write("]" + sep)
            elif key == "wikitext":
                f.write(json.dumps(key) + ": {\n")
                sub = list(val.items())
                for j, (sk, sv) in enumerate(sub):
                    if sk == "windows":
                        f.write("  " + json.dumps(sk) + ": [\n")
                        for wi, win in enumerate(sv):
                            f.write("    " + json.dumps(win, separators=(",", ":")))
                            f.write(",\n" if wi + 1 < len(sv) else "\n")
                        f.write("  ]")
                    else:
                        f.write(
                            "  "
                            + json.dumps(sk)
                            + ": "
                            + json.dumps(sv, ensure_ascii=False, separators=(",", ":"))
                        )
                    f.write(",\n" if j + 1 < len(sub) else "\n")
                f.write("}" + sep)
            else:
                f.write(json.dumps(key) + ": " + json.dumps(val, ensure_ascii=False) + sep)
        f.write("}\n")
    # Validate what we wrote.
    with open(args.out, encoding="utf-8") as f:
        json.load(f)
    print(
        f"wrote {args.out} ({os.path.getsize(args.out)} bytes) in {time.time() - t_start:.1f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
