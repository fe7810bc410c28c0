#!/usr/bin/env python3
"""Prefill / greedy-decode throughput of llama.cpp (via llama-cpp-python) on a GGUF model.

Called by the C++ bench as a subprocess:
  python3 scripts/llamacpp-bench.py --model PATH --prompt-tokens 512 \
      --decode-tokens 128 --threads 2 --json OUT.json

The prompt is the first N token ids of the WikiText-2 raw test text (\\r removed,
no BOS). Prefill = eval of the N prompt tokens on a fresh context, timed after one
warm-up prefill. Decode = N_decode single-token evals, each feeding the argmax of
the previous logits (greedy). Prints the JSON result on stdout and writes it to --json.

Exit codes: 0 ok, 2 bad arguments / input, 3 llama_cpp (or numpy) not importable.
"""

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# The data folder scripts/get-data.sh fills ($COMMVQ_DATA overrides, as for the binary).
DEFAULT_TEXT = os.path.join(os.environ.get("COMMVQ_DATA") or os.path.join(ROOT, "data"),
                            "text", "wikitext-2-raw", "wiki.test.raw")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", dest="json_out", default=None)
    ap.add_argument("--text", default=DEFAULT_TEXT)
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="timed repetitions of prefill+decode; the median rate is reported",
    )
    args = ap.parse_args()

    try:
        import llama_cpp
        import numpy as np
    except ImportError as e:
        print(
            f"llamacpp-bench: error: python module llama_cpp (or numpy) is not importable: {e}\n"
            "install it with: pip install llama-cpp-python numpy",
            file=sys.stderr,
        )
        return 3

    if args.prompt_tokens < 1 or args.decode_tokens < 0 or args.threads < 1 or args.repeat < 1:
        print("llamacpp-bench: error: bad --prompt-tokens/--decode-tokens/--threads/--repeat",
              file=sys.stderr)
        return 2
    if not os.path.isfile(args.model):
        print(f"llamacpp-bench: error: model not found: {args.model}", file=sys.stderr)
        return 2
    try:
        with open(args.text, "rb") as f:
            raw = f.read()
    except OSError as e:
        print(f"llamacpp-bench: error: cannot read --text: {e}", file=sys.stderr)
        return 2
    text = raw.replace(b"\r", b"").decode("utf-8")

    n_prompt = args.prompt_tokens
    n_decode = args.decode_tokens
    n_ctx = n_prompt + n_decode + 16

    llm = llama_cpp.Llama(
        model_path=args.model,
        n_ctx=n_ctx,
        n_batch=512,
        n_ubatch=512,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        logits_all=False,
        flash_attn=False,
        verbose=False,
    )
    n_vocab = llm.n_vocab()

    # Tokenize a prefix of the text large enough for n_prompt tokens (growing if needed).
    n_chars = max(4096, n_prompt * 8)
    while True:
        ids = llm.tokenize(text[:n_chars].encode("utf-8"), add_bos=False, special=False)
        # Drop the last token: it may be cut mid-word by the prefix boundary.
        if len(ids) - 1 >= n_prompt or n_chars >= len(text):
            break
        n_chars *= 2
    prompt = ids[:n_prompt]
    if len(prompt) < n_prompt:
        print(f"llamacpp-bench: error: text has only {len(ids)} tokens", file=sys.stderr)
        return 2

    def last_logits():
        ptr = llm._ctx.get_logits_ith(-1)
        return np.ctypeslib.as_array(ptr, shape=(n_vocab,))

    def fresh():
        llm.reset()
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)

    # Warm-up prefill (page in weights, allocate compute buffers).
    fresh()
    llm.eval(prompt)

    prefill_rates, decode_rates = [], []
    prefill_s_list, decode_s_list = [], []
    generated = []
    for _ in range(args.repeat):
        fresh()
        t0 = time.perf_counter()
        llm.eval(prompt)
        t1 = time.perf_counter()
        generated = []
        tok = int(np.argmax(last_logits()))
        t2 = time.perf_counter()
        for _ in range(n_decode):
            generated.append(tok)
            llm.eval([tok])
            tok = int(np.argmax(last_logits()))
        t3 = time.perf_counter()
        prefill_s_list.append(t1 - t0)
        decode_s_list.append(t3 - t2)
        prefill_rates.append(n_prompt / (t1 - t0))
        if n_decode > 0:
            decode_rates.append(n_decode / (t3 - t2))

    result = {
        "prefill_tokens_per_s": statistics.median(prefill_rates),
        "decode_tokens_per_s": statistics.median(decode_rates) if decode_rates else None,
        "threads": args.threads,
        "llama_cpp_python_version": llama_cpp.__version__,
        "prompt_tokens": n_prompt,
        "decode_tokens": n_decode,
        "prefill_s": statistics.median(prefill_s_list),
        "decode_s": statistics.median(decode_s_list),
        "repeat": args.repeat,
        "n_ctx": n_ctx,
        "n_batch": 512,
        "model": os.path.basename(args.model),
        "first_generated_ids": generated[:16],
        # Other processes competing for the cores make multi-threaded ggml very slow
        # (spinning barriers); record the load so noisy runs can be spotted.
        "loadavg_1m_at_end": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
    }
    s = json.dumps(result)
    print(s)
    if args.json_out:
        d = os.path.dirname(os.path.abspath(args.json_out))
        os.makedirs(d, exist_ok=True)
        with open(args.json_out, "w") as f:
            f.write(s + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
