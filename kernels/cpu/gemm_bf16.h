#pragma once
// Prefill matmul in bf16: y[T x N] = x[T x K] · Wᵀ with x and W rounded to bf16 (round to nearest
// even), every product exact in fp32 and the sums in fp32. The `matmul=bf16` mode of the engine
// (model/weight_matrix.h); the default `fp32` mode dequantizes to fp32 and calls SGEMM.
//
// Layout. W is packed per call, 16 rows ("a group") at a time, as bf16 pairs along K:
//   packed[g·16·K + (p·16 + r)·2 + j] = bf16(W[16g + r][2p + j])     (rows past N are zero)
// which is at once the B operand of AVX-512 vdpbf16ps (16 rows × one K-pair per register) and the
// VNNI-ordered B tile of AMX tdpbf16ps (16 K-pairs × 16 rows per 1 KiB tile). x is bf16 row-major
// with row stride K and zero rows up to round_up(T, kBf16TokenPad).
//
// Kernels (chosen at run time, highest available; COMMVQ_BF16_GEMM=fallback|avx512bf16|amx forces one):
//   amx        — AMX-BF16 tiles (Sapphire Rapids and later): 32 tokens × 32 rows per step.
//   avx512bf16 — AVX-512 BF16 vdpbf16ps (Zen 4, Cooper Lake, Sapphire Rapids): 6 tokens × 64 rows.
//   fallback   — the bf16-rounded operands widened to fp32 and multiplied by SGEMM (any CPU).
// All compute the same rounded operands; they differ only in the order of the fp32 sums, so they
// agree to float rounding (|Δ| ≤ 1e-5·Σ|x·w| for K ≤ 16384, tested against a double reference).
#include <cstddef>
#include <cstdint>

namespace cvq {

enum class Bf16Kernel { Fallback = 0, Avx512Bf16 = 1, Amx = 2 };

const char* bf16_kernel_name(Bf16Kernel k);
bool bf16_kernel_available(Bf16Kernel k);  // CPU (and, for AMX, the OS permission) allow it
// The kernel gemm_bf16 uses: COMMVQ_BF16_GEMM if set (throws cvq::Error for an unknown or
// unavailable name), else the best available. Read once per process.
Bf16Kernel active_bf16_kernel();

inline constexpr int kBf16GroupRows = 16;
inline constexpr int kBf16TokenPad = 32;
inline int64_t bf16_padded_tokens(int64_t T) { return (T + kBf16TokenPad - 1) / kBf16TokenPad * kBf16TokenPad; }
inline size_t bf16_packed_elements(int64_t n_rows, int64_t K) {
  return static_cast<size_t>((n_rows + kBf16GroupRows - 1) / kBf16GroupRows) * kBf16GroupRows * static_cast<size_t>(K);
}

// Rounds x [T x K] (row stride ldx) to bf16 rows of stride K and zero-fills rows T..padded-1.
// Rows [t0, t1) only, so callers can split the work over threads (padding is written by the part
// that ends at T).
void convert_rows_bf16(const float* x, int64_t ldx, int64_t T, int64_t K, int64_t t0, int64_t t1, uint16_t* out);
// Packs rows [0, n_rows) of the fp32 matrix w (row stride ldw, K columns; K even) as described above.
void pack_bf16_rows(const float* w, int64_t ldw, int64_t n_rows, int64_t K, uint16_t* packed);

// y[t·ldy + n] = Σ_k x[t][k]·W[n][k] for t < T, n < n_rows. K must be a multiple of 32.
// Single-threaded: the caller splits rows (whole groups) over threads.
void gemm_bf16(Bf16Kernel kernel, const uint16_t* x, int64_t T, int64_t K, const uint16_t* w_packed, int64_t n_rows,
               float* y, int64_t ldy);
void gemm_bf16(const uint16_t* x, int64_t T, int64_t K, const uint16_t* w_packed, int64_t n_rows, float* y,
               int64_t ldy);  // active_bf16_kernel()
// The same over a window of a larger packed matrix: groups `group_stride` elements apart (16·K_total
// for a matrix packed with K_total columns; w_packed may point at K-pair p, i.e. p·32 elements in).
void gemm_bf16_strided(Bf16Kernel kernel, const uint16_t* x, int64_t T, int64_t K, const uint16_t* w_packed,
                       int64_t group_stride, int64_t n_rows, float* y, int64_t ldy);

// The same product in double from the bf16 operands (tests).
double gemm_bf16_reference(const uint16_t* x, int64_t K, const uint16_t* w_packed, int64_t row);

namespace detail {
void gemm_bf16_avx512bf16(const uint16_t* x, int64_t T, int64_t K, const uint16_t* w_packed, int64_t group_stride,
                          int64_t n_rows, float* y, int64_t ldy);
void gemm_bf16_amx(const uint16_t* x, int64_t T, int64_t K, const uint16_t* w_packed, int64_t group_stride,
                   int64_t n_rows, float* y, int64_t ldy);
bool amx_request_permission();
// AVX-512 BF16 conversions (vcvtne2ps2bf16: the same rounding as float_to_bf16 for normal numbers).
void convert_rows_bf16_avx512bf16(const float* x, int64_t ldx, int64_t K, int64_t t0, int64_t t1, uint16_t* out);
void pack_bf16_group_avx512bf16(const float* w, int64_t ldw, int n_valid, int64_t K,
                                uint16_t* dst);  // arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA); true if granted
}  // namespace detail

}  // namespace cvq
