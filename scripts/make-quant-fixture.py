#!/usr/bin/env python3
"""Writes tests/fixtures/quant_blocks.json: random-but-valid GGML blocks and their dequantization
by gguf-py (the reference numpy implementation that ships with llama.cpp), plus reference
quantizations of random floats to q8_0 / q4_0.

Needs: pip install gguf numpy. Deterministic (fixed seed); re-run only when adding types.

    python3 scripts/make-quant-fixture.py [--out tests/fixtures/quant_blocks.json]
"""
import argparse
import json
import pathlib

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

# type -> (elements per block, bytes per block, byte offsets of fp16 scale fields)
LAYOUTS = {
    T.Q4_0: (32, 18, [0]),
    T.Q4_1: (32, 20, [0, 2]),
    T.Q5_0: (32, 22, [0]),
    T.Q5_1: (32, 24, [0, 2]),
    T.Q8_0: (32, 34, [0]),
    T.Q4_K: (256, 144, [0, 2]),
    T.Q5_K: (256, 176, [0, 2]),
    T.Q6_K: (256, 210, [208]),
}


def sane_half(rng):
    """An fp16 value of magnitude 0.01..1 with random sign, as little-endian bytes."""
    mag = 10 ** rng.uniform(-2, 0)
    return np.array([mag * rng.choice([-1, 1])], dtype=np.float16).tobytes()


def block_case(rng, qtype, n_blocks):
    elems, size, scale_offsets = LAYOUTS[qtype]
    data = bytearray(rng.integers(0, 256, size=n_blocks * size, dtype=np.uint8).tobytes())
    for b in range(n_blocks):
        for off in scale_offsets:
            data[b * size + off : b * size + off + 2] = sane_half(rng)
    raw = np.frombuffer(bytes(data), dtype=np.uint8)
    expected = quants.dequantize(raw, qtype).astype(np.float32).reshape(-1)
    assert expected.size == n_blocks * elems and np.all(np.isfinite(expected))
    return bytes(data), expected


def f16_case(rng, n):
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    bits = bits[(bits & 0x7C00) != 0x7C00][:n]  # no inf / NaN (subnormals and zeros stay)
    bits[:4] = [0x0000, 0x8000, 0x0001, 0x83FF]  # zeros and subnormals
    raw = bits.astype("<u2").tobytes()
    expected = quants.dequantize(np.frombuffer(raw, dtype=np.uint8), T.F16).astype(np.float32).reshape(-1)
    return raw, expected


def bf16_case(rng, n):
    bits = rng.integers(0, 1 << 16, size=2 * n, dtype=np.uint32).astype(np.uint16)
    bits = bits[(bits & 0x7F80) != 0x7F80][:n]  # no inf / NaN
    raw = bits.astype("<u2").tobytes()
    expected = quants.dequantize(np.frombuffer(raw, dtype=np.uint8), T.BF16).astype(np.float32).reshape(-1)
    return raw, expected


def f32_case(rng, n):
    vals = (rng.standard_normal(n) * 10 ** rng.uniform(-3, 3, size=n)).astype(np.float32)
    raw = vals.astype("<f4").tobytes()
    return raw, vals


def floats_json(a):
    # repr of the float32 value as a double: parses back to the identical float32.
    return [float(v) for v in np.asarray(a, dtype=np.float32)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/quant_blocks.json"))
    args = ap.parse_args()
    rng = np.random.default_rng(20240607)

    cases = []

    def add(qtype, raw, expected):
        cases.append({
            "type": qtype.name,
            "ggml_type": int(qtype),
            "n": int(expected.size),
            "hex": raw.hex(),
            "expected": floats_json(expected),
        })

    add(T.F32, *f32_case(rng, 37))
    add(T.F16, *f16_case(rng, 45))
    add(T.BF16, *bf16_case(rng, 45))
    for qtype in LAYOUTS:
        n_blocks = 2 if LAYOUTS[qtype][0] == 256 else 3
        add(qtype, *block_case(rng, qtype, n_blocks))

    # Reference quantizers: gguf-py's Q8_0 / Q4_0 are bit-exact ports of llama.cpp's *_ref.
    quantize_cases = []
    for qtype in (T.Q8_0, T.Q4_0):
        x = (rng.standard_normal(96) * np.repeat(10 ** rng.uniform(-2, 1, size=3), 32)).astype(np.float32)
        x[40:44] = 0.0  # ties and zeros
        x[64:96] = 0.0  # an all-zero block
        q = quants.quantize(x.reshape(1, -1), qtype).reshape(-1)
        quantize_cases.append({"type": qtype.name, "ggml_type": int(qtype), "x": floats_json(x), "hex": bytes(q).hex()})

    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "generator": "scripts/make-quant-fixture.py (gguf-py dequantize / quantize)",
        "dequantize": cases,
        "quantize": quantize_cases,
    }
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(cases)} dequantize cases)")


if __name__ == "__main__":
    main()
