#!/usr/bin/env python3
"""Where and why our forward pass and llama.cpp's part ways (issue 2's top-1 agreement criterion).

Runs llama.cpp (llama-cpp-python) on one token with an eval callback that captures every f32
intermediate (attn_norm-L, Vcur-L, kqv_out-L, attn_out-L, ffn_inp-L, ffn_norm-L, ffn_gate-L, ffn_up-L,
ffn_swiglu-L, ffn_out-L, l_out-L), then recomputes them in numpy from the GGUF (gguf package):

1. per operation, starting from llama.cpp's own input to that operation, with llama.cpp's CPU
   arithmetic for quantized weights (activations rounded to Q8_1/Q8_0 blocks of 32: d = amax/127 kept
   in fp16, q = round(x·127/amax); Q4_1 adds m·s with s = fp16(d·Σq)) — this shows each operation
   is understood to float rounding;
2. as a chain from the token embedding — this shows how 1-ulp differences (numpy's exp vs ggml's,
   a different summation order) move a value across a rounding boundary of the 8-bit activation
   grid or of an fp16 scale, after which the two runs differ by quantization noise, not rounding.

Needs: pip install llama-cpp-python gguf numpy. Writes a markdown report (default: stdout).
"""
import argparse
import ctypes
import json
import os
import sys

import numpy as np

try:
    import llama_cpp
    from gguf import GGUFReader
    from gguf.quants import dequantize
except ImportError as e:  # pragma: no cover - tool script
    sys.exit(f"llamacpp-divergence: {e}; install with: pip install llama-cpp-python gguf numpy")

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "tests", "fixtures", "llamacpp_reference.json")


def capture_llamacpp(model_path, token):
    """Runs one token through llama.cpp and returns {tensor name: f32 array}."""
    libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    gb = ctypes.CDLL(os.path.join(libdir, "libggml-base.so"))
    gb.ggml_get_name.restype = ctypes.c_char_p
    gb.ggml_get_name.argtypes = [ctypes.c_void_p]
    gb.ggml_nbytes.restype = ctypes.c_size_t
    gb.ggml_nbytes.argtypes = [ctypes.c_void_p]
    gb.ggml_nelements.restype = ctypes.c_int64
    gb.ggml_nelements.argtypes = [ctypes.c_void_p]
    gb.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
    out = {}

    def cb(t, ask, _user):
        if ask:
            return True
        if ctypes.cast(t, ctypes.POINTER(ctypes.c_int32))[0] == 0:  # GGML_TYPE_F32
            n, nb = gb.ggml_nelements(t), gb.ggml_nbytes(t)
            if nb == n * 4:
                buf = np.empty(n, np.float32)
                gb.ggml_backend_tensor_get(t, buf.ctypes.data, 0, nb)
                out[gb.ggml_get_name(t).decode()] = buf
        return True

    callback = llama_cpp.ggml_backend_sched_eval_callback(cb)
    llama_cpp.llama_backend_init()
    model = llama_cpp.llama_model_load_from_file(model_path.encode(), llama_cpp.llama_model_default_params())
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_threads, cp.n_threads_batch = 256, 16, 16, 1, 1
    cp.cb_eval = callback
    cp.flash_attn_type = 0
    ctx = llama_cpp.llama_init_from_model(model, cp)
    arr = (llama_cpp.llama_token * 1)(token)
    if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(arr, 1)) != 0:
        sys.exit("llamacpp-divergence: llama_decode failed")
    return out


class Weights:
    def __init__(self, path):
        self.t = {t.name: t for t in GGUFReader(path).tensors}
        self.cache = {}

    def matrix(self, name):
        if name not in self.cache:
            t = self.t[name]
            self.cache[name] = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(-1, int(t.shape[0]))
        return self.cache[name]

    def vector(self, name):
        return np.asarray(self.t[name].data, np.float32)

    def q4_1_mins(self, name):
        raw = np.asarray(self.t[name].data).view(np.uint8)
        return raw.reshape(raw.shape[0], -1, 20)[:, :, 2:4].copy().view(np.float16)[..., 0].astype(np.float64)

    def is_q4_1(self, name):
        return self.t[name].tensor_type.name == "Q4_1"


def f16(x):
    return np.asarray(x, np.float32).astype(np.float16).astype(np.float64)


def matmul_like_ggml(w, name, x):
    """W·x with x rounded to the 8-bit blocks llama.cpp's CPU backend quantizes activations to."""
    xb = np.asarray(x, np.float32).reshape(-1, 32)
    amax = np.abs(xb).max(1)
    d = (amax / np.float32(127)).astype(np.float32)
    inv = np.where(amax != 0, np.float32(127) / np.where(amax == 0, 1, amax), 0).astype(np.float32)
    q = np.rint(xb * inv[:, None]).astype(np.float32)
    y = w.matrix(name) @ (f16(d)[:, None] * q).reshape(-1)
    if w.is_q4_1(name):  # llama.cpp adds m·s with s = fp16(d·Σq), not m·fp16(d)·Σq
        sq = q.sum(1)
        y = y + w.q4_1_mins(name) @ (f16(d * sq) - f16(d) * sq)
    return y.astype(np.float32)


def rms_norm(x, weight, eps):
    x = np.asarray(x, np.float32)
    mean = np.float32(float(np.sum((x * x).astype(np.float64))) / x.size)
    return (x * (np.float32(1) / np.sqrt(mean + np.float32(eps)))).astype(np.float32) * weight


def rel(a, b):
    b = np.asarray(b, np.float64)
    return float(np.sqrt(((np.asarray(a, np.float64) - b) ** 2).mean()) / np.sqrt((b ** 2).mean()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/commvq-bench/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--out", help="write the markdown report here instead of stdout")
    args = ap.parse_args()
    if not os.path.exists(args.model):
        sys.exit(f"llamacpp-divergence: model not found: {args.model}")
    token = json.load(open(FIXTURE))["wikitext"]["token_ids_first_8192"][0]
    ll = capture_llamacpp(args.model, token)
    w = Weights(args.model)
    n_layers = sum(1 for k in ll if k.startswith("l_out-"))
    n_head, n_kv, hd, eps = 9, 3, 64, 1e-5  # SmolLM2-135M (the default model); position 0 needs no RoPE
    group = n_head // n_kv

    lines = ["# Our forward pass vs llama.cpp, operation by operation (one token, position 0)", "",
             f"`python3 scripts/llamacpp-divergence.py` — llama-cpp-python {llama_cpp.__version__}, "
             f"{os.path.basename(args.model)}, WikiText-2 token {token}. Relative RMS differences.", "",
             "## 1. Each operation from llama.cpp's own input (8-bit activation blocks emulated)", "",
             "| layer | V proj | attn out proj | gate | up | down | SwiGLU | RMSNorm |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    worst = 0.0
    for l in range(n_layers):
        p = f"blk.{l}."
        e = [rel(matmul_like_ggml(w, p + "attn_v.weight", ll[f"attn_norm-{l}"]), ll[f"Vcur-{l}"]),
             rel(matmul_like_ggml(w, p + "attn_output.weight", ll[f"kqv_out-{l}"]), ll[f"attn_out-{l}"]),
             rel(matmul_like_ggml(w, p + "ffn_gate.weight", ll[f"ffn_norm-{l}"]), ll[f"ffn_gate-{l}"]),
             rel(matmul_like_ggml(w, p + "ffn_up.weight", ll[f"ffn_norm-{l}"]), ll[f"ffn_up-{l}"]),
             rel(matmul_like_ggml(w, p + "ffn_down.weight", ll[f"ffn_swiglu-{l}"]), ll[f"ffn_out-{l}"])]
        g = ll[f"ffn_gate-{l}"].astype(np.float64)
        e.append(rel(g / (1 + np.exp(-g)) * ll[f"ffn_up-{l}"], ll[f"ffn_swiglu-{l}"]))
        e.append(rel(rms_norm(ll[f"ffn_inp-{l}"], w.vector(p + "ffn_norm.weight"), eps), ll[f"ffn_norm-{l}"]))
        worst = max(worst, *e)
        if l in (0, 1, n_layers // 2, n_layers - 1):
            lines.append(f"| {l} | " + " | ".join(f"{v:.1e}" for v in e) + " |")
    lines += ["", f"Worst over all {n_layers} layers and operations: {worst:.1e}.", "",
              "## 2. The same operations chained from the token embedding", "",
              "| layer | ffn_inp | l_out |", "|---:|---:|---:|"]
    x = w.matrix("token_embd.weight")[token].astype(np.float32)
    for l in range(n_layers):
        p = f"blk.{l}."
        h = rms_norm(x, w.vector(p + "attn_norm.weight"), eps)
        v = matmul_like_ggml(w, p + "attn_v.weight", h)
        attn = np.concatenate([f16(v[(i // group) * hd:(i // group + 1) * hd]) for i in range(n_head)]).astype(np.float32)
        x = x + matmul_like_ggml(w, p + "attn_output.weight", attn)
        e_inp = rel(x, ll[f"ffn_inp-{l}"])
        h = rms_norm(x, w.vector(p + "ffn_norm.weight"), eps)
        g = matmul_like_ggml(w, p + "ffn_gate.weight", h)
        u = matmul_like_ggml(w, p + "ffn_up.weight", h)
        x = x + matmul_like_ggml(w, p + "ffn_down.weight", (g / (np.float32(1) + np.exp(-g)) * u).astype(np.float32))
        lines.append(f"| {l} | {e_inp:.1e} | {rel(x, ll[f'l_out-{l}']):.1e} |")
    h = rms_norm(x, w.vector("output_norm.weight"), eps)
    logits = matmul_like_ggml(w, "token_embd.weight", h)
    lines += ["", f"Logits: relative RMS difference {rel(logits, ll['result_output']):.1e}.", ""]
    report = "\n".join(lines)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
    else:
        print(report)


if __name__ == "__main__":
    main()
