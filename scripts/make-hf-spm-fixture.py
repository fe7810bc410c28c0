#!/usr/bin/env python3
"""Generate tests/fixtures/hf_spm_tokenizers/ (SentencePiece-style BPE tokenizer.json files + expected ids).

The fixture lets the C++ tokenizer loader be checked against Hugging Face's own tokenization of a
LLaMA-2 / Mistral style tokenizer.json (BPE model with byte_fallback, "▁" U+2581 for spaces):

  * legacy/tokenizer.json: like LLaMA-2's file: normalizer Sequence[Prepend("▁"), Replace(" " -> "▁")],
    pre_tokenizer null, decoder Sequence[Replace("▁" -> " "), ByteFallback, Fuse, Strip(" ", 1, 0)];
    merges as "a b" strings (the older encoding);
  * metaspace/tokenizer.json: like Mistral v0.3 / newer LLaMA saves: normalizer null, pre_tokenizer
    Metaspace(replacement "▁", prepend_scheme "first", split false), the same decoder; merges as
    ["a", "b"] pairs (the encoding tokenizers >= 0.20 writes);
  * each with a tokenizer_config.json (PreTrainedTokenizerFast, BOS added, no EOS) and the same
    model: "<unk>"=0, "<s>"=1, "</s>"=2, the byte tokens "<0x00>".."<0xFF>" at ids 3..258 (in the
    vocab, not in added_tokens, as in LLaMA-2), then the learned pieces; BPE with unk "<unk>",
    fuse_unk, byte_fallback, ignore_merges false; TemplateProcessing post-processor "<s> $A";
  * expected.json: per variant, the ids transformers gives for the TOKENIZE_CASES of
    scripts/make-llamacpp-fixture.py plus some SentencePiece-specific cases (special tokens in the
    middle of text, literal "<0x41>", characters never seen in training), "Hello world" with
    special tokens added, a few decodes, and the same ids from the tokenizers package directly.

The pieces are learned with tokenizers' BpeTrainer (Metaspace pre-tokenization, so no merge
crosses a word start) on the first --train-chars characters of WikiText-2 raw (wiki.train.raw if
present, else wiki.test.raw; data/text/... or ../shared/datasets/text/...), then renumbered after
the special and byte tokens. Training is deterministic for a given tokenizers version.

Usage:
  python3 scripts/make-hf-spm-fixture.py [--text PATH] [--train-chars 300000] [--vocab-size 2000]
      [--limit-alphabet 120] [--out-dir tests/fixtures/hf_spm_tokenizers]

Requires: pip install tokenizers "transformers<5" (the fixture records the versions it was made with).
"""

import argparse
import collections
import json
import os
import shlex
import sys
import time

import llamacpp_fixture_module  # scripts/llamacpp_fixture_module.py

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
TEXT_DIRS = [
    os.path.join(ROOT, "data", "text", "wikitext-2-raw"),
    os.path.join(ROOT, "..", "shared", "datasets", "text", "wikitext-2-raw"),
]
DEFAULT_OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "hf_spm_tokenizers")

SPACE = "\u2581"  # "▁"
SPECIALS = ["<unk>", "<s>", "</s>"]
N_BYTES = 256
MAX_TOKENIZER_JSON_BYTES = 200 * 1000


LC = llamacpp_fixture_module.load()
TOKENIZE_CASES = LC.TOKENIZE_CASES
read_wikitext = LC.read_wikitext

# SentencePiece-specific cases added to TOKENIZE_CASES: (text, special).
EXTRA_CASES = [
    ("", False),
    ("A", False),
    ("Hello<s>world</s> again", True),
    ("Hello<s>world</s> again", False),
    ("Hello <s> world </s>", True),
    ("<s>Hi there", True),
    ("<s>Hi there", False),
    ("<s> Hi there", True),
    ("Hello</s>", True),
    ("</s>", True),
    ("<unk>", True),
    ("<unk>", False),
    ("  two leading spaces", False),
    ("two trailing spaces  ", False),
    (" ", False),
    ("\n", False),
    ("\nleading newline", False),
    ("a\n b\n\n  c", False),
    ("漢字", False),
    ("🙂", False),
    ("Smile 🙂 漢字 ok", False),
    ("<0x41>", False),
    ("<0x41>", True),
    (SPACE + "already marked", False),
    ("x" + SPACE + SPACE + "y", False),
]
DECODE_CASES = [
    ("Hello world", False),
    ("Hello<s>world</s> again", True),
    ("Smile 🙂 漢字 ok", False),
    ("  two leading spaces", False),
    ("line one\nline two\n", False),
]


def default_text():
    for name in ("wiki.train.raw", "wiki.test.raw"):
        for d in TEXT_DIRS:
            p = os.path.join(d, name)
            if os.path.isfile(p):
                return p
    return os.path.join(TEXT_DIRS[0], "wiki.train.raw")


def train_pieces(text, vocab_size, limit_alphabet):
    """BpeTrainer on `text` (one line per sequence); returns (pieces in trained-id order, merges
    as (a, b) pairs). The pieces exclude the special tokens; the byte tokens are never trained."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="always", split=True)
    lines = [ln for ln in text.split("\n") if ln.strip()]
    # The alphabet is chosen here: BpeTrainer's own limit_alphabet cut breaks frequency ties in hash
    # order, which made the vocab differ from run to run. Given exactly limit_alphabet chars as the
    # initial alphabet (they rank above every other char), the trainer keeps just these, in
    # code point order; every other char is left to byte fallback.
    freq = collections.Counter()
    for ln in lines:
        freq.update(SPACE + ln.replace(" ", SPACE))
    freq[SPACE] += 1 << 40  # always kept
    alphabet = [ch for ch, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[:limit_alphabet]]
    n_learned = vocab_size - len(SPECIALS) - N_BYTES
    trainer = trainers.BpeTrainer(
        vocab_size=n_learned + len(SPECIALS),
        min_frequency=2,
        special_tokens=SPECIALS,
        limit_alphabet=len(alphabet),
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tk.train_from_iterator(lines, trainer=trainer, length=len(lines))
    model = json.loads(tk.to_str())["model"]
    vocab = model["vocab"]
    for i, s in enumerate(SPECIALS):
        assert vocab[s] == i, (s, vocab.get(s))
    pieces = [p for p, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if p not in SPECIALS]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return pieces, merges


def added_token(i, content):
    return {
        "id": i,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": True,
    }


def post_processor():
    bos = lambda t: {"SpecialToken": {"id": "<s>", "type_id": t}}  # noqa: E731
    seq = lambda n, t: {"Sequence": {"id": n, "type_id": t}}  # noqa: E731
    return {
        "type": "TemplateProcessing",
        "single": [bos(0), seq("A", 0)],
        "pair": [bos(0), seq("A", 0), bos(1), seq("B", 1)],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
    }


LEGACY_DECODER = {
    "type": "Sequence",
    "decoders": [
        {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
        {"type": "ByteFallback"},
        {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0},
    ],
}


def build_tokenizer_json(variant, pieces, merges):
    vocab = {}
    for s in SPECIALS:
        vocab[s] = len(vocab)
    for b in range(N_BYTES):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for p in pieces:
        assert p not in vocab, p
        vocab[p] = len(vocab)
    for a, b in merges:
        assert a in vocab and b in vocab and a + b in vocab, (a, b)
    if variant == "legacy":
        enc_merges = [a + " " + b for a, b in merges]
        normalizer = {
            "type": "Sequence",
            "normalizers": [
                {"type": "Prepend", "prepend": SPACE},
                {"type": "Replace", "pattern": {"String": " "}, "content": SPACE},
            ],
        }
        pre_tokenizer = None
        decoder = LEGACY_DECODER
    else:
        enc_merges = [[a, b] for a, b in merges]
        normalizer = None
        ms = {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "first", "split": False}
        pre_tokenizer = ms
        # The legacy decoder, as Mistral v0.3's file has it: a Metaspace decoder would leave
        # byte-fallback pieces ("<0x0A>") undecoded.
        decoder = LEGACY_DECODER
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added_token(i, s) for i, s in enumerate(SPECIALS)],
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post_processor(),
        "decoder": decoder,
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": enc_merges,
        },
    }


TOKENIZER_CONFIG = {
    "tokenizer_class": "PreTrainedTokenizerFast",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "add_bos_token": True,
    "add_eos_token": False,
    "clean_up_tokenization_spaces": False,
}


def dump_tokenizer_json(doc):
    """Like tokenizers' pretty output (indent 2), but each merge on one line."""
    text = json.dumps(doc, ensure_ascii=False, indent=2)
    if doc["model"]["merges"] and isinstance(doc["model"]["merges"][0], list):
        model = doc["model"]
        merges = model.pop("merges")
        text = json.dumps(doc, ensure_ascii=False, indent=2)
        model["merges"] = merges
        assert text.endswith("\n  }\n}")
        body = ",\n".join("      " + json.dumps(m, ensure_ascii=False) for m in merges)
        text = text[: -len("\n  }\n}")] + ',\n    "merges": [\n' + body + "\n    ]\n  }\n}"
        assert json.loads(text) == doc
    return text + "\n"


def write_expected(path, doc):
    """Top-level keys one per line; per variant one key per line, one case per line."""
    c = dict(ensure_ascii=False, separators=(",", ":"))
    lines = ["{"]
    top = list(doc.items())
    for i, (key, val) in enumerate(top):
        tsep = "" if i + 1 == len(top) else ","
        if key != "variants":
            lines.append("  " + json.dumps(key) + ": " + json.dumps(val, ensure_ascii=False) + tsep)
            continue
        lines.append("  " + json.dumps(key) + ": {")
        vs = list(val.items())
        for vi, (vname, var) in enumerate(vs):
            lines.append("    " + json.dumps(vname) + ": {")
            items = list(var.items())
            for j, (k, v) in enumerate(items):
                sep = "" if j + 1 == len(items) else ","
                if isinstance(v, list) and v and isinstance(v[0], dict):
                    lines.append("      " + json.dumps(k) + ": [")
                    for t, case in enumerate(v):
                        lines.append("        " + json.dumps(case, **c) + ("" if t + 1 == len(v) else ","))
                    lines.append("      ]" + sep)
                else:
                    lines.append("      " + json.dumps(k) + ": " + json.dumps(v, **c) + sep)
            lines.append("    }" + ("" if vi + 1 == len(vs) else ","))
        lines.append("  }" + tsep)
    lines.append("}")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with open(tmp, encoding="utf-8") as f:
        assert json.load(f) == doc  # validate before replacing
    os.replace(tmp, path)


def record_variant(folder, tok_json_path, PreTrainedTokenizerFast, AutoTokenizer, Tokenizer):
    tok = AutoTokenizer.from_pretrained(folder)
    if type(tok) is not PreTrainedTokenizerFast:
        raise SystemExit(f"error: AutoTokenizer gave {type(tok).__name__}, expected PreTrainedTokenizerFast")
    raw = Tokenizer.from_file(tok_json_path)
    # transformers must use the file's pipeline unchanged (as tokenizers itself loads it).
    loaded = json.loads(tok.backend_tokenizer.to_str())
    plain = json.loads(raw.to_str())
    for k in ("normalizer", "pre_tokenizer", "post_processor", "decoder", "added_tokens", "model"):
        if loaded[k] != plain[k]:
            raise SystemExit(f"error: transformers changed the {k} of {tok_json_path}: {loaded[k]}")

    def encode(text, special):
        return tok(text, add_special_tokens=False, split_special_tokens=not special)["input_ids"]

    probe = "Hello<s>world"
    if not (len(encode(probe, False)) > len(encode(probe, True)) and 1 in encode(probe, True)
            and 1 not in encode(probe, False)):
        raise SystemExit(f"error: split_special_tokens had no effect: {encode(probe, True)} vs {encode(probe, False)}")

    cases = list(TOKENIZE_CASES) + EXTRA_CASES
    tokenize = [{"text": s, "special": sp, "ids": encode(s, sp)} for s, sp in cases]

    direct = []
    for s, sp in cases:
        raw.encode_special_tokens = not sp
        direct.append({"text": s, "special": sp, "ids": raw.encode(s, add_special_tokens=False).ids})
    raw.encode_special_tokens = False
    direct_special = [d for d in direct if d["special"]]
    eq_special = all(d["ids"] == t["ids"] for d, t in zip(direct, tokenize) if d["special"])
    eq_all = all(d["ids"] == t["ids"] for d, t in zip(direct, tokenize))

    with_special = tok("Hello world", add_special_tokens=True)["input_ids"]
    assert with_special[0] == 1, with_special
    assert with_special == raw.encode("Hello world", add_special_tokens=True).ids

    decode = []
    for s, sp in DECODE_CASES:
        ids = encode(s, sp)
        decode.append({
            "text": s,
            "ids": ids,
            "decoded": tok.decode(ids),
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
            "tokenizers_decoded": raw.decode(ids, skip_special_tokens=False),
        })

    # Byte fallback must cover characters the training text never had.
    for s in ("漢字", "🙂"):
        ids = encode(s, False)
        pieces = tok.convert_ids_to_tokens(ids)
        byte_pieces = [p for p in pieces if p.startswith("<0x")]
        if 0 in ids or len(byte_pieces) != len(s.encode("utf-8")):
            raise SystemExit(f"error: no byte fallback for {s!r}: {pieces}")

    return {
        "tokenizer_class": type(tok).__name__,
        "tokenize_note": "tok(text, add_special_tokens=False, split_special_tokens=not special)"
        "['input_ids'] with tok = AutoTokenizer.from_pretrained(<variant folder>)",
        "tokenize": tokenize,
        "with_special_note": "tok('Hello world', add_special_tokens=True)['input_ids']",
        "with_special": with_special,
        "decode_note": "decoded = tok.decode(ids); decoded_skip_special = tok.decode(ids, "
        "skip_special_tokens=True); tokenizers_decoded = Tokenizer.from_file(...).decode(ids, "
        "skip_special_tokens=False); ids as in tokenize",
        "decode": decode,
        "tokenizers_direct_note": "Tokenizer.from_file(<variant>/tokenizer.json).encode(text, "
        "add_special_tokens=False).ids for the special=true cases (encode_special_tokens=false)",
        "tokenizers_direct": direct_special,
        "tokenizers_direct_equal": eq_special,
        "tokenizers_direct_equal_all_cases": eq_all,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text", default=None, help="training text (default: WikiText-2 raw train, else test)")
    ap.add_argument("--train-chars", type=int, default=300000)
    ap.add_argument("--vocab-size", type=int, default=2000, help="total, specials and byte tokens included")
    ap.add_argument("--limit-alphabet", type=int, default=120)
    ap.add_argument("--out-dir", default=DEFAULT_OUT_DIR)
    args = ap.parse_args()
    if args.text is None:
        args.text = default_text()
    if not os.path.isfile(args.text):
        print(f"error: text not found: {args.text} (scripts/get-data.sh fetches it)", file=sys.stderr)
        return 2
    try:
        import tokenizers
        import transformers
        from tokenizers import Tokenizer
        from transformers import AutoTokenizer, PreTrainedTokenizerFast
    except ImportError as e:
        print(f'error: cannot import tokenizers/transformers ({e}); pip install tokenizers "transformers<5"',
              file=sys.stderr)
        return 3

    t_start = time.time()
    text = read_wikitext(args.text)[: args.train_chars]
    pieces, merges = train_pieces(text, args.vocab_size, args.limit_alphabet)
    print(f"trained {len(pieces)} pieces, {len(merges)} merges from {len(text)} chars of {args.text}",
          file=sys.stderr)

    expected = {
        "made_with": "python3 " + " ".join(shlex.quote(a) for a in sys.argv),
        "tokenizers_version": tokenizers.__version__,
        "transformers_version": transformers.__version__,
        "training": {
            "text": os.path.basename(args.text),
            "chars": len(text),
            "preprocess": "read bytes, remove every \\r, decode UTF-8, first N chars, non-blank lines",
            "trainer": f"BpeTrainer(vocab_size={len(pieces) + len(SPECIALS)}, min_frequency=2, "
            f"limit_alphabet=initial_alphabet=the {args.limit_alphabet} most frequent chars, "
            "special_tokens=<unk>,<s>,</s>) with "
            "Metaspace(prepend_scheme=always, split=true) pre-tokenization",
            "vocab_size": len(SPECIALS) + N_BYTES + len(pieces),
            "n_merges": len(merges),
        },
        "layout": "vocab: <unk>=0 <s>=1 </s>=2, <0x00>..<0xFF>=3..258, learned pieces 259..; "
        "added_tokens: <unk>, <s>, </s> only (special, normalized=false)",
        "merges_encoding": {"legacy": "\"a b\" strings", "metaspace": "[\"a\", \"b\"] pairs"},
        "variants": {},
    }
    for variant in ("legacy", "metaspace"):
        folder = os.path.join(args.out_dir, variant)
        os.makedirs(folder, exist_ok=True)
        doc = build_tokenizer_json(variant, pieces, merges)
        tj = os.path.join(folder, "tokenizer.json")
        with open(tj, "w", encoding="utf-8") as f:
            f.write(dump_tokenizer_json(doc))
        with open(tj, encoding="utf-8") as f:
            Tokenizer.from_str(f.read())  # must load
        if os.path.getsize(tj) > MAX_TOKENIZER_JSON_BYTES:
            print(f"error: {tj} is {os.path.getsize(tj)} bytes; use a smaller --vocab-size", file=sys.stderr)
            return 4
        with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(TOKENIZER_CONFIG, indent=2) + "\n")
        expected["variants"][variant] = record_variant(
            folder, tj, PreTrainedTokenizerFast, AutoTokenizer, Tokenizer)
        ok = expected["variants"][variant]["tokenizers_direct_equal"]
        print(f"{variant}: {tj} ({os.path.getsize(tj)} bytes); tokenizers == transformers: {ok}",
              file=sys.stderr)

    out = os.path.join(args.out_dir, "expected.json")
    write_expected(out, expected)
    print(f"wrote {out} ({os.path.getsize(out)} bytes) in {time.time() - t_start:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
