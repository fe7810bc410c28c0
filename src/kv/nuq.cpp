#include "kv/nuq.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/fp16.h"

namespace cvq {

NuqRange nuq_range(float lo, float hi) {
  NuqRange r;
  r.offset_fp16 = float_to_fp16(0.5f * (hi + lo));
  r.scale_fp16 = float_to_fp16(std::max(0.0f, 0.5f * (hi - lo)));
  r.offset = fp16_to_float(r.offset_fp16);
  r.scale = fp16_to_float(r.scale_fp16);
  if (!(r.scale > 0.0f) || !std::isfinite(r.scale)) {  // constant (or too wide to store): no dense range
    r.scale_fp16 = 0;
    r.scale = 0.0f;
  }
  return r;
}

float nuq_excess(float x, const NuqRange& r) {
  const float dev = std::fabs(x - r.offset);
  if (r.scale > 0.0f) return dev / r.scale;
  return dev == 0.0f ? 0.0f : std::numeric_limits<float>::infinity();
}

NuqLut nuq_lut_from_centroids(int bits, std::vector<float> centroids) {
  return nuq_lut_with_levels(bits, centroids, centroids);
}

NuqLut nuq_lut_with_levels(int bits, const std::vector<float>& centroids, const std::vector<float>& levels) {
  const size_t k = size_t{1} << bits;
  if (bits < 1 || bits > 8 || centroids.size() != k || levels.size() != k) {
    throw Error("nuq: a " + std::to_string(bits) + "-bit lookup table needs " + std::to_string(k) + " levels (got " +
                std::to_string(centroids.size()) + " centroids, " + std::to_string(levels.size()) + " levels)");
  }
  NuqLut lut;
  lut.bits = bits;
  lut.levels = levels;
  lut.bounds.resize(k - 1);
  for (size_t i = 0; i + 1 < k; ++i) {
    if (!(centroids[i] <= centroids[i + 1])) throw Error("nuq: lookup table centroids must be ascending and finite");
    lut.bounds[i] = 0.5f * (centroids[i] + centroids[i + 1]);
  }
  for (float v : levels) {
    if (!std::isfinite(v)) throw Error("nuq: lookup table levels must be finite");
  }
  return lut;
}

std::vector<double> kmeans_1d(const std::vector<double>& x_in, const std::vector<double>& w_in, int k) {
  if (k < 1) throw Error("kmeans_1d: k must be positive");
  if (x_in.size() != w_in.size()) throw Error("kmeans_1d: points and weights differ in length");
  // Merge equal points (and drop zero weights).
  std::vector<double> x, w;
  for (size_t i = 0; i < x_in.size(); ++i) {
    if (!(w_in[i] > 0.0)) continue;
    if (i > 0 && x_in[i] < x_in[i - 1]) throw Error("kmeans_1d: points must be ascending");
    if (!x.empty() && x.back() == x_in[i]) {
      w.back() += w_in[i];
    } else {
      x.push_back(x_in[i]);
      w.push_back(w_in[i]);
    }
  }
  const int m = static_cast<int>(x.size());
  std::vector<double> c;
  if (m == 0) {
    for (int j = 0; j < k; ++j) c.push_back(-1.0 + (2.0 * j + 1.0) / k);
    return c;
  }
  if (m <= k) {
    c = x;
    while (static_cast<int>(c.size()) < k) c.push_back(x.back());
    return c;
  }
  // Prefix sums; cost(j, i) = weighted SSE of points [j, i) around their mean.
  std::vector<double> W(m + 1, 0.0), S1(m + 1, 0.0), S2(m + 1, 0.0);
  for (int i = 0; i < m; ++i) {
    W[i + 1] = W[i] + w[i];
    S1[i + 1] = S1[i] + w[i] * x[i];
    S2[i + 1] = S2[i] + w[i] * x[i] * x[i];
  }
  auto cost = [&](int j, int i) {
    const double ww = W[i] - W[j], s = S1[i] - S1[j];
    return std::max(0.0, (S2[i] - S2[j]) - s * s / ww);
  };
  auto mean = [&](int j, int i) { return (S1[i] - S1[j]) / (W[i] - W[j]); };
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> prev(m + 1, inf), cur(m + 1, inf);
  for (int i = 1; i <= m; ++i) prev[i] = cost(0, i);
  // split[c][i]: start of the last cluster in the best split of points [0, i) into c + 1 clusters.
  std::vector<std::vector<int>> split(k);
  for (int cl = 1; cl < k; ++cl) {
    std::fill(cur.begin(), cur.end(), inf);
    split[cl].assign(m + 1, 0);
    // D&C over i (the optimal split point is monotone in i for 1-D k-means).
    struct Frame {
      int lo, hi, opt_lo, opt_hi;
    };
    std::vector<Frame> stack{{cl + 1, m, cl, m - 1}};
    while (!stack.empty()) {
      const Frame f = stack.back();
      stack.pop_back();
      if (f.lo > f.hi) continue;
      const int mid = (f.lo + f.hi) / 2;
      double best = inf;
      int arg = std::max(cl, f.opt_lo);
      for (int j = std::max(cl, f.opt_lo); j <= std::min(mid - 1, f.opt_hi); ++j) {
        const double v = prev[j] + cost(j, mid);
        if (v < best) {
          best = v;
          arg = j;
        }
      }
      cur[mid] = best;
      split[cl][mid] = arg;
      stack.push_back({f.lo, mid - 1, f.opt_lo, arg});
      stack.push_back({mid + 1, f.hi, arg, f.opt_hi});
    }
    std::swap(prev, cur);
  }
  c.assign(k, 0.0);
  int i = m;
  for (int cl = k - 1; cl >= 1; --cl) {
    const int j = split[cl][i];
    c[cl] = mean(j, i);
    i = j;
  }
  c[0] = mean(0, i);
  return c;
}

NuqHistogram::NuqHistogram(int n_bins) : count_(n_bins, 0.0), sum_(n_bins, 0.0) {
  if (n_bins < 1) throw Error("nuq histogram: need at least one bin");
}

void NuqHistogram::add(float xf) {
  const double x = std::clamp(static_cast<double>(xf), -1.0, 1.0);
  const int n = static_cast<int>(count_.size());
  const int b = std::clamp(static_cast<int>((x + 1.0) * 0.5 * n), 0, n - 1);
  count_[b] += 1.0;
  sum_[b] += x;
  total_ += 1.0;
  s1_ += x;
  s2_ += x * x;
}

void NuqHistogram::merge(const NuqHistogram& o) {
  if (o.count_.size() != count_.size()) throw Error("nuq histogram: merging histograms of different sizes");
  for (size_t i = 0; i < count_.size(); ++i) {
    count_[i] += o.count_[i];
    sum_[i] += o.sum_[i];
  }
  total_ += o.total_;
  s1_ += o.s1_;
  s2_ += o.s2_;
}

double NuqHistogram::mean() const { return total_ > 0.0 ? s1_ / total_ : 0.0; }
double NuqHistogram::stddev() const {
  if (!(total_ > 0.0)) return 0.0;
  const double m = mean();
  return std::sqrt(std::max(0.0, s2_ / total_ - m * m));
}

void NuqHistogram::points(std::vector<double>& x, std::vector<double>& w) const {
  x.clear();
  w.clear();
  for (size_t i = 0; i < count_.size(); ++i) {
    if (count_[i] > 0.0) {
      x.push_back(sum_[i] / count_[i]);
      w.push_back(count_[i]);
    }
  }
}

std::vector<float> NuqHistogram::kmeans(int k) const {
  std::vector<double> x, w;
  points(x, w);
  const std::vector<double> c = kmeans_1d(x, w, k);
  return std::vector<float>(c.begin(), c.end());
}

std::vector<float> NuqHistogram::qnorm_levels(const std::vector<float>& centroids) const {
  std::vector<double> x, w;
  points(x, w);
  if (x.empty()) return centroids;
  std::vector<float> bounds(centroids.size() > 0 ? centroids.size() - 1 : 0);
  for (size_t i = 0; i < bounds.size(); ++i) bounds[i] = 0.5f * (centroids[i] + centroids[i + 1]);
  double W = 0.0, s1 = 0.0, s2 = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    int c = 0;
    for (float b : bounds) c += static_cast<float>(x[i]) > b ? 1 : 0;
    const double q = centroids[c];
    W += w[i];
    s1 += w[i] * q;
    s2 += w[i] * q * q;
  }
  const double mq = s1 / W, sq = std::sqrt(std::max(0.0, s2 / W - mq * mq));
  if (!(sq > 0.0)) return centroids;
  const double m = mean(), s = stddev();
  std::vector<float> out(centroids.size());
  for (size_t i = 0; i < centroids.size(); ++i) out[i] = static_cast<float>(m + (centroids[i] - mq) * (s / sq));
  return out;
}

void nuq_pack(const uint8_t* codes, int n, int bits, uint8_t* row) {
  const int nb = nuq_row_bytes(n, bits);
  uint32_t acc = 0;
  int have = 0, out = 0;
  const uint32_t mask = (1u << bits) - 1u;
  for (int i = 0; i < n; ++i) {
    acc |= (static_cast<uint32_t>(codes[i]) & mask) << have;
    have += bits;
    while (have >= 8) {
      row[out++] = static_cast<uint8_t>(acc & 0xffu);
      acc >>= 8;
      have -= 8;
    }
  }
  if (have > 0) row[out++] = static_cast<uint8_t>(acc & 0xffu);
  while (out < nb) row[out++] = 0;
}

void nuq_unpack(const uint8_t* row, int first, int n, int bits, uint8_t* codes) {
  if (n <= 0) return;
  const int64_t bit0 = static_cast<int64_t>(first) * bits;
  const uint8_t* p = row + (bit0 >> 3);
  uint32_t acc = *p++ >> (bit0 & 7);
  int have = 8 - static_cast<int>(bit0 & 7);
  const uint32_t mask = (1u << bits) - 1u;
  for (int i = 0; i < n; ++i) {
    while (have < bits) {
      acc |= static_cast<uint32_t>(*p++) << have;
      have += 8;
    }
    codes[i] = static_cast<uint8_t>(acc & mask);
    acc >>= bits;
    have -= bits;
  }
}

int nuq_outliers_per_side(double outliers, int64_t n) {
  return static_cast<int>(std::llround(outliers * static_cast<double>(n) * 0.5));
}

void nuq_split_token(const float* x, int n, int k, int32_t* outlier_idx, float* lo, float* hi,
                     std::vector<int32_t>& scratch) {
  if (n <= 0) {
    *lo = *hi = 0.0f;
    return;
  }
  if (k == 0) {
    float mn = x[0], mx = x[0];
    for (int i = 1; i < n; ++i) {
      mn = std::min(mn, x[i]);
      mx = std::max(mx, x[i]);
    }
    *lo = mn;
    *hi = mx;
    return;
  }
  if (2 * k >= n)
    throw Error("nuq: " + std::to_string(2 * k) + " outliers leave no dense part in " + std::to_string(n) +
                " elements");
  scratch.resize(n);
  for (int i = 0; i < n; ++i) scratch[i] = i;
  auto less = [x](int32_t a, int32_t b) { return x[a] < x[b] || (x[a] == x[b] && a < b); };
  std::nth_element(scratch.begin(), scratch.begin() + k, scratch.end(), less);
  *lo = x[scratch[k]];
  std::nth_element(scratch.begin() + k, scratch.begin() + (n - 1 - k), scratch.end(), less);
  *hi = x[scratch[n - 1 - k]];
  for (int i = 0; i < k; ++i) {
    outlier_idx[i] = scratch[i];
    outlier_idx[k + i] = scratch[n - k + i];
  }
  std::sort(outlier_idx, outlier_idx + 2 * k);
}

}  // namespace cvq
