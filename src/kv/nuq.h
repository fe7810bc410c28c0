#pragma once
// KVQuant's non-uniform datatype "nuq" (Hooper et al., NeurIPS 2024; BASELINES.md), the pieces shared
// by the cache (kvquant_cache.h) and its offline calibration (kvquant_calib.h):
//   * normalization  x_n = (x - offset) / scale with offset = (hi + lo)/2, scale = (hi - lo)/2, both
//     rounded to fp16 (what the cache stores), so the dense part [lo, hi] maps onto [-1, 1];
//   * a 2^b-level lookup table (LUT) on [-1, 1] found by 1-D k-means. The k-means here is *exact*
//     (dynamic programming over sorted points, not Lloyd iterations) and *unweighted* (every
//     calibration value counts once; the paper weights by Fisher information);
//   * Q-Norm (the paper's 2-bit fix): rescale the levels so dequantized calibration data keep the
//     mean and standard deviation they had before quantization;
//   * b-bit code rows packed LSB-first into bytes (element j at bit j*b), b in {1..8}.
#include <cstdint>
#include <vector>

namespace cvq {

// ---- normalization ----
struct NuqRange {
  uint16_t offset_fp16 = 0, scale_fp16 = 0;
  float offset = 0.0f, scale = 0.0f;  // the fp16 values as float
};
NuqRange nuq_range(float lo, float hi);
// (x - offset) / scale clamped to [-1, 1]; 0 when scale is 0 (a constant channel or token).
inline float nuq_normalize(float x, const NuqRange& r) {
  if (!(r.scale > 0.0f)) return 0.0f;
  const float y = (x - r.offset) / r.scale;
  return y < -1.0f ? -1.0f : (y > 1.0f ? 1.0f : y);
}
// How far outside the dense range x lies: |x - offset| / scale (1 = on a threshold); for scale 0,
// 0 when x == offset and +inf otherwise. Used to rank outlier candidates.
float nuq_excess(float x, const NuqRange& r);

// ---- lookup table ----
struct NuqLut {
  int bits = 0;
  std::vector<float> levels;  // 2^b reconstruction levels (normalized domain), ascending
  std::vector<float> bounds;  // 2^b - 1 decision thresholds, ascending: code = #{bounds < x}

  int size() const { return static_cast<int>(levels.size()); }
  uint8_t encode(float x_normalized) const {
    int c = 0;
    for (float b : bounds) c += x_normalized > b ? 1 : 0;
    return static_cast<uint8_t>(c);
  }
};
// Levels = centroids, bounds = midpoints between consecutive centroids (nearest-centroid coding).
NuqLut nuq_lut_from_centroids(int bits, std::vector<float> centroids);
// Keeps the centroids' bounds and replaces the levels by the Q-Norm-rescaled centroids.
NuqLut nuq_lut_with_levels(int bits, const std::vector<float>& centroids, const std::vector<float>& levels);

// Exact weighted 1-D k-means: points x (ascending, distinct not required) with weights w > 0.
// Returns k centroids ascending that minimize sum w_i (x_i - c(i))^2 over contiguous clusters (optimal
// 1-D clusters are contiguous). Fewer than k distinct points: the points, then copies of the last.
// No points: k evenly spaced levels on [-1, 1].
std::vector<double> kmeans_1d(const std::vector<double>& x, const std::vector<double>& w, int k);

// A histogram over [-1, 1] of normalized values for the calibration k-means: per bin the count and
// the sum (so a bin's point is the mean of its members), plus the exact total sums for Q-Norm.
class NuqHistogram {
 public:
  explicit NuqHistogram(int n_bins = 1 << 16);
  void add(float x);  // x in [-1, 1] (clamped)
  void merge(const NuqHistogram& o);
  double total() const { return total_; }
  double mean() const;
  double stddev() const;
  // The bin means and counts of the non-empty bins, ascending.
  void points(std::vector<double>& x, std::vector<double>& w) const;
  // The k-means centroids of the histogram's points.
  std::vector<float> kmeans(int k) const;
  // Q-Norm levels for these centroids: c' = mean + (c - mean_q) * std / std_q where mean_q, std_q are
  // the mean and std of the data after nearest-centroid quantization. Unchanged if std_q is 0.
  std::vector<float> qnorm_levels(const std::vector<float>& centroids) const;

 private:
  std::vector<double> count_, sum_;
  double total_ = 0.0, s1_ = 0.0, s2_ = 0.0;
};

// ---- bit packing ----
inline int nuq_row_bytes(int n, int bits) { return (n * bits + 7) / 8; }
// Packs codes[0..n) into row (nuq_row_bytes bytes, every byte written).
void nuq_pack(const uint8_t* codes, int n, int bits, uint8_t* row);
// codes[i] = code of element first + i of a packed row, i < n.
void nuq_unpack(const uint8_t* row, int first, int n, int bits, uint8_t* codes);

// ---- per-token dense-and-sparse split (values, online) ----
// Marks the k smallest and the k largest of x[0..n) (ties by index) as outliers: writes their indices
// (ascending) to outlier_idx[0..2k) and returns the range [lo, hi] of the rest (the 0.5% / 99.5%
// percentile thresholds for k = round(0.005 n)). Needs 2k < n. scratch is resized as needed.
void nuq_split_token(const float* x, int n, int k, int32_t* outlier_idx, float* lo, float* hi,
                     std::vector<int32_t>& scratch);
// k per side for a fraction `outliers` of n elements: round(outliers * n / 2).
int nuq_outliers_per_side(double outliers, int64_t n);

}  // namespace cvq
