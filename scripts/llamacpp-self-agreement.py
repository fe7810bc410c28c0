#!/usr/bin/env python3
"""How well llama.cpp agrees with itself: the top-1 agreement of a llama.cpp run with flash
attention on against a fixture made with it off (scripts/make-llamacpp-fixture.py), on the same
8,192 WikiText-2 tokens. This is the noise floor of top-1 agreement between two correct runs that
round differently — the yardstick for the engine-vs-llama.cpp agreement the integration tests check.

Usage: python3 scripts/llamacpp-self-agreement.py --fixture tests/fixtures/llamacpp_reference_NAME.json
           [--model NAME|PATH] [--threads 2] [--write]
--write adds {"flash_attn_top1_agreement": ...} to the fixture's "wikitext" section.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import importlib.util

_spec = importlib.util.spec_from_file_location(
    "fixture", os.path.join(os.path.dirname(os.path.abspath(__file__)), "make-llamacpp-fixture.py"))
fixture_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture_mod)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--model", default=None, help="known model name or GGUF path (default: the fixture's model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    import llama_cpp
    import numpy as np

    with open(args.fixture, encoding="utf-8") as f:
        fx = json.load(f)
    model = args.model
    if model is None:
        by_file = {v: k for k, v in fixture_mod.known_models().items()}
        model = by_file.get(fx["model"], fx["model"])
    _, path = fixture_mod.resolve_model(model)
    wt = fx["wikitext"]
    window = wt["window"]
    ids = wt["token_ids_first_8192"]
    llm = llama_cpp.Llama(model_path=path, n_ctx=window, n_batch=512, n_ubatch=512, n_threads=args.threads,
                          n_threads_batch=args.threads, logits_all=True, flash_attn=True, verbose=False)
    agree = total = 0
    for w, ref in enumerate(wt["windows"]):
        toks = ids[w * window:(w + 1) * window]
        llm.reset()
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        llm.eval(toks)
        top1 = np.asarray(llm.scores[: window - 1, :]).argmax(axis=-1)
        agree += int((top1 == np.asarray(ref["top1"])).sum())
        total += window - 1
        print(f"window {w}: {agree}/{total}", file=sys.stderr)
    rate = agree / total
    print(json.dumps({"fixture": os.path.basename(args.fixture), "flash_attn_top1_agreement": rate,
                      "agree": agree, "positions": total}))
    if args.write:
        wt["flash_attn_top1_agreement"] = rate
        text = open(args.fixture, encoding="utf-8").read()
        key = '"wikitext": {\n'
        assert key in text and '"flash_attn_top1_agreement"' not in text
        text = text.replace(key, key + '  "flash_attn_top1_agreement":' + json.dumps(rate) + ",\n", 1)
        with open(args.fixture + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        json.load(open(args.fixture + ".tmp", encoding="utf-8"))
        os.replace(args.fixture + ".tmp", args.fixture)
    return 0


if __name__ == "__main__":
    sys.exit(main())
