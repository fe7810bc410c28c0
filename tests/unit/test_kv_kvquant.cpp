// KVQuant (kv/kvquant_cache.h, kv/kvquant_calib.h, kv/nuq.h): exact 1-D k-means against brute force
// and a hand case, Q-Norm, normalization and bit packing round trips, outliers stored exactly,
// native == simulated attention, calibration file round trip and refusal for another model,
// projected_bytes == bytes and the bits per element of the presets, constant inputs, spec errors.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "commvq/kv_methods.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/safetensors.h"
#include "kv/kv_cache.h"
#include "kv/kvquant_cache.h"
#include "kv/kvquant_calib.h"
#include "kv/nuq.h"
#include "support/kv_test_geometry.h"

namespace cvq {
namespace {

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("kvquant_" + std::to_string(getpid()) + "_" + name)).string();
}

using test::make_geo;

// Pre-RoPE-key-like activations: per-channel scales and offsets, an outlier channel, heavy tails.
struct Acts {
  std::vector<float> k, v, q;
};
Acts make_acts(const KvGeometry& g, int layer, int32_t pos0, int n, unsigned salt = 0) {
  const int D = g.kv_dim(), Q = g.q_dim();
  Acts a;
  a.k.resize(static_cast<size_t>(n) * D);
  a.v.resize(a.k.size());
  a.q.resize(static_cast<size_t>(n) * Q);
  for (int t = 0; t < n; ++t) {
    std::mt19937 rng(static_cast<unsigned>((pos0 + t) * 7919 + layer * 104729 + salt));
    std::normal_distribution<float> nd;
    std::student_t_distribution<float> heavy(3.0f);
    for (int c = 0; c < D; ++c) {
      const float s = 0.5f + 2.5f * static_cast<float>((c * 37) % 11) / 10.0f + (c % 29 == 3 ? 6.0f : 0.0f);
      a.k[static_cast<size_t>(t) * D + c] = s * heavy(rng) + 0.3f * static_cast<float>(c % 5);
      a.v[static_cast<size_t>(t) * D + c] = nd(rng) + 0.1f * static_cast<float>(c % 3);
    }
    for (int c = 0; c < Q; ++c) a.q[static_cast<size_t>(t) * Q + c] = 0.6f * nd(rng);
  }
  return a;
}

KvQuantCalibration calibrate(const KvGeometry& g, int n_tokens, double outliers = 0.01, unsigned salt = 99) {
  KvQuantCalibrator cal(g, outliers, 1 << 12);
  for (int l = 0; l < g.n_layers; ++l) {
    for (int t0 = 0; t0 < n_tokens; t0 += 256) {
      const int n = std::min(256, n_tokens - t0);
      Acts a = make_acts(g, l, t0, n, salt);
      cal.add(l, a.k.data(), a.v.data(), n);
    }
  }
  return cal.finish({2, 3, 4}, "synthetic");
}

// Writes a calibration for g once per geometry and returns its path.
std::string calib_file(const KvGeometry& g, double outliers = 0.01) {
  const std::string p = tmp_path("calib_" + std::to_string(g.n_layers) + "_" + std::to_string(g.n_head) + "_" +
                                 std::to_string(g.n_head_kv) + "_" + std::to_string(g.head_dim) + "_" +
                                 std::to_string(static_cast<int>(g.rope.theta())) + "_" +
                                 std::to_string(static_cast<int>(outliers * 1e4)) + ".safetensors");
  if (!std::filesystem::exists(p)) calibrate(g, 1024, outliers).save(p);
  return p;
}

// Exposes the protected decode hooks for direct checks.
struct OpenKvQuant : KvQuantCache {
  using KvQuantCache::decode_keys;
  using KvQuantCache::decode_values;
  using KvQuantCache::KvQuantCache;
};

float max_abs(const std::vector<float>& x) {
  float m = 0.0f;
  for (float v : x) m = std::max(m, std::fabs(v));
  return m;
}

// Brute-force optimal 1-D k-means over contiguous partitions (small n).
double best_sse(const std::vector<double>& x, const std::vector<double>& w, int k, std::vector<double>* best_c) {
  const int n = static_cast<int>(x.size());
  double best = std::numeric_limits<double>::infinity();
  std::vector<int> cuts(k - 1);
  std::function<void(int, int)> rec = [&](int idx, int from) {
    if (idx == k - 1) {
      double sse = 0.0;
      std::vector<double> c;
      int a = 0;
      for (int j = 0; j < k; ++j) {
        const int b = j < k - 1 ? cuts[j] : n;
        double W = 0, S = 0;
        for (int i = a; i < b; ++i) W += w[i], S += w[i] * x[i];
        const double m = S / W;
        for (int i = a; i < b; ++i) sse += w[i] * (x[i] - m) * (x[i] - m);
        c.push_back(m);
        a = b;
      }
      if (sse < best) {
        best = sse;
        if (best_c) *best_c = c;
      }
      return;
    }
    for (int cpos = from; cpos <= n - (k - 1 - idx); ++cpos) {
      cuts[idx] = cpos;
      rec(idx + 1, cpos + 1);
    }
  };
  rec(0, 1);
  return best;
}

double sse_of(const std::vector<double>& x, const std::vector<double>& w, const std::vector<double>& c) {
  double s = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    double d = std::numeric_limits<double>::infinity();
    for (double ci : c) d = std::min(d, (x[i] - ci) * (x[i] - ci));
    s += w[i] * d;
  }
  return s;
}

TEST(KvQuantNuq, KMeansHandCase) {
  const std::vector<double> x = {0, 1, 2, 10, 11, 12}, w(6, 1.0);
  EXPECT_EQ(kmeans_1d(x, w, 2), (std::vector<double>{1.0, 11.0}));
  // Weights pull centroids: {0 (w=3), 1 (w=1)} -> 0.25; {10} alone.
  EXPECT_EQ(kmeans_1d({0, 1, 10}, {3, 1, 1}, 2), (std::vector<double>{0.25, 10.0}));
  // k = 3 on three well separated pairs.
  EXPECT_EQ(kmeans_1d({-1, -0.5, 0, 0.5, 3, 4}, std::vector<double>(6, 1.0), 3),
            (std::vector<double>{-0.75, 0.25, 3.5}));
  // Fewer distinct points than clusters; no points at all.
  EXPECT_EQ(kmeans_1d({0.5, 0.5, 0.7}, {1, 1, 1}, 4), (std::vector<double>{0.5, 0.7, 0.7, 0.7}));
  EXPECT_EQ(kmeans_1d({}, {}, 4), (std::vector<double>{-0.75, -0.25, 0.25, 0.75}));
}

TEST(KvQuantNuq, KMeansIsOptimalAgainstBruteForce) {
  std::mt19937 rng(5);
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> ud(0.1, 3.0);
  for (int trial = 0; trial < 40; ++trial) {
    const int n = 5 + trial % 8, k = 2 + trial % 4;
    std::vector<double> x(n), w(n);
    for (int i = 0; i < n; ++i) x[i] = nd(rng) * (trial % 3 == 0 ? 5.0 : 1.0), w[i] = ud(rng);
    std::sort(x.begin(), x.end());
    const std::vector<double> c = kmeans_1d(x, w, k);
    ASSERT_TRUE(std::is_sorted(c.begin(), c.end()));
    const double want = best_sse(x, w, k, nullptr);
    EXPECT_NEAR(sse_of(x, w, c), want, 1e-9 * (1.0 + want)) << "trial " << trial;
  }
}

TEST(KvQuantNuq, QNormKeepsMeanAndStd) {
  NuqHistogram h(1 << 12);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.1f, 0.3f);
  for (int i = 0; i < 50000; ++i) h.add(std::clamp(nd(rng), -1.0f, 1.0f));
  const std::vector<float> c = h.kmeans(4), lev = h.qnorm_levels(c);
  const NuqLut lut = nuq_lut_with_levels(2, c, lev);
  std::vector<double> x, w;
  h.points(x, w);
  double W = 0, s1 = 0, s2 = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double q = lut.levels[lut.encode(static_cast<float>(x[i]))];
    W += w[i], s1 += w[i] * q, s2 += w[i] * q * q;
  }
  const double m = s1 / W, s = std::sqrt(s2 / W - m * m);
  EXPECT_NEAR(m, h.mean(), 1e-5);
  EXPECT_NEAR(s, h.stddev(), 1e-5);
  // Plain k-means centroids shrink the spread; Q-Norm widens it back.
  EXPECT_GT(lev.back() - lev.front(), c.back() - c.front());
}

TEST(KvQuantNuq, NormalizationRoundTrip) {
  for (auto [lo, hi] : std::vector<std::pair<float, float>>{{-3.0f, 5.0f}, {0.125f, 0.25f}, {-100.0f, -20.0f}}) {
    const NuqRange r = nuq_range(lo, hi);
    EXPECT_NEAR(nuq_normalize(lo, r), -1.0f, 2e-3f);
    EXPECT_NEAR(nuq_normalize(hi, r), 1.0f, 2e-3f);
    for (int i = 0; i <= 20; ++i) {
      const float x = lo + (hi - lo) * static_cast<float>(i) / 20.0f;
      const float y = nuq_normalize(x, r);
      ASSERT_GE(y, -1.0f);
      ASSERT_LE(y, 1.0f);
      EXPECT_NEAR(y * r.scale + r.offset, x, 2e-3f * (std::fabs(lo) + std::fabs(hi)));
    }
    EXPECT_EQ(nuq_normalize(hi + 10 * (hi - lo), r), 1.0f);
    EXPECT_GT(nuq_excess(hi + (hi - lo), r), 2.9f);
  }
  const NuqRange c = nuq_range(0.75f, 0.75f);  // constant: scale 0, no NaN
  EXPECT_EQ(c.scale, 0.0f);
  EXPECT_EQ(nuq_normalize(0.75f, c), 0.0f);
  EXPECT_EQ(nuq_excess(0.75f, c), 0.0f);
  EXPECT_TRUE(std::isinf(nuq_excess(0.8f, c)));
  // A LUT codes every level to itself; bounds are midpoints.
  const NuqLut lut = nuq_lut_from_centroids(2, {-0.9f, -0.2f, 0.3f, 1.0f});
  for (int i = 0; i < 4; ++i) EXPECT_EQ(lut.encode(lut.levels[i]), i);
  EXPECT_EQ(lut.encode(0.04f), 1);
  EXPECT_EQ(lut.encode(0.06f), 2);
}

TEST(KvQuantNuq, PackUnpackRoundTrip) {
  std::mt19937 rng(2);
  for (int bits = 1; bits <= 8; ++bits) {
    for (int n : {1, 7, 64, 192, 333}) {
      std::vector<uint8_t> codes(n), row(nuq_row_bytes(n, bits)), back(n);
      for (auto& c : codes) c = static_cast<uint8_t>(rng() & ((1u << bits) - 1u));
      nuq_pack(codes.data(), n, bits, row.data());
      for (int first : {0, 1, n / 3, n - 1}) {
        const int m = n - first;
        nuq_unpack(row.data(), first, m, bits, back.data());
        for (int i = 0; i < m; ++i)
          ASSERT_EQ(back[i], codes[first + i]) << bits << " bits, n " << n << ", first " << first;
      }
    }
  }
}

TEST(KvQuantNuq, TokenSplitTakesPercentiles) {
  std::vector<float> x = {5, -7, 0, 1, 2, 3, 100, -2, 4, 6};
  int32_t idx[4];
  float lo, hi;
  std::vector<int32_t> scratch;
  nuq_split_token(x.data(), 10, 2, idx, &lo, &hi, scratch);
  EXPECT_EQ(lo, 0.0f);
  EXPECT_EQ(hi, 5.0f);
  EXPECT_EQ(std::vector<int32_t>(idx, idx + 4), (std::vector<int32_t>{1, 6, 7, 9}));
  EXPECT_EQ(nuq_outliers_per_side(0.01, 192), 1);
  EXPECT_EQ(nuq_outliers_per_side(0.01, 4096), 20);
}

TEST(KvQuantCache, OutliersAreStoredExactly) {
  const KvGeometry g = make_geo(1, 6, 3, 64, RopeLayout::HalfSplit, 100000.0);  // kv_dim 192: 1 outlier per side
  const KvQuantCalibration cal = calibrate(g, 1024);
  KvQuantOptions o;
  o.bits = 2;
  o.window = 32;
  o.calib = "in-memory";
  o.mode = KvExecMode::Simulated;
  OpenKvQuant cache(g, o, cal);
  const int D = g.kv_dim(), n = 64;
  Acts a = make_acts(g, 0, 0, n);
  // fp16-exact outliers far outside the channel thresholds (keys) and the token range (values).
  const std::vector<std::pair<int, int>> spots = {{0, 5}, {3, 100}, {31, 191}, {32, 0}, {40, 64}, {63, 77}};
  for (auto [t, c] : spots) {
    a.k[size_t(t) * D + c] = (c % 2 ? -1.0f : 1.0f) * (512.0f + c);
    a.v[size_t(t) * D + c] = (t % 2 ? -1.0f : 1.0f) * (256.0f + t);
  }
  std::vector<int32_t> pos(n);
  for (int i = 0; i < n; ++i) pos[i] = i;
  cache.append(0, a.k.data(), a.v.data(), pos.data(), n);
  cache.settle();
  ASSERT_EQ(cache.n_compressed_keys(0), n);
  std::vector<float> k(size_t(n) * D), v(k.size());
  cache.decode_keys(0, 0, n, k.data());
  cache.decode_values(0, 0, n, v.data());
  for (auto [t, c] : spots) {
    EXPECT_EQ(k[size_t(t) * D + c], a.k[size_t(t) * D + c]) << t << "," << c;
    EXPECT_EQ(v[size_t(t) * D + c], a.v[size_t(t) * D + c]) << t << "," << c;
  }
  // Every token's extreme values are exact (1 per side for kv_dim 192), and the dense part is close.
  for (int t = 0; t < n; ++t) {
    const float* x = a.v.data() + size_t(t) * D;
    const int imax = static_cast<int>(std::max_element(x, x + D) - x),
              imin = static_cast<int>(std::min_element(x, x + D) - x);
    EXPECT_EQ(v[size_t(t) * D + imax], fp16_to_float(float_to_fp16(x[imax])));
    EXPECT_EQ(v[size_t(t) * D + imin], fp16_to_float(float_to_fp16(x[imin])));
  }
  EXPECT_EQ(cache.key_outlier_budget(), static_cast<int>(std::round(0.01 * 32 * D)));
  EXPECT_EQ(cache.value_outliers_per_token(), 2);
  EXPECT_EQ(cache.stats().key_stored, 2 * cache.key_outlier_budget());
  EXPECT_EQ(cache.stats().key_elements, int64_t{n} * D);
}

TEST(KvQuantCache, KeyoutAllStoresExactlyTheValuesOutsideTheThresholds) {
  const KvGeometry g = make_geo(1, 6, 3, 64, RopeLayout::HalfSplit, 100000.0);
  const std::string path = calib_file(g);
  for (bool all : {false, true}) {
    KvQuantOptions o;
    o.bits = 3;
    o.window = 32;
    o.calib = path;
    o.key_outliers_all = all;
    o.mode = KvExecMode::Simulated;
    OpenKvQuant cache(g, o);
    const int D = g.kv_dim(), n = 96;
    Acts a = make_acts(g, 0, 3000, n, 11);
    for (int t = 0; t < n; t += 3) a.k[size_t(t) * D + (t * 7) % D] = 700.0f;  // 32 certain outliers
    std::vector<int32_t> pos(n);
    for (int i = 0; i < n; ++i) pos[i] = i;
    cache.append(0, a.k.data(), a.v.data(), pos.data(), n);
    cache.settle();
    const KvQuantStats& st = cache.stats();
    EXPECT_GE(st.key_outside, 32);
    EXPECT_EQ(st.key_stored, all ? st.key_outside : 3 * cache.key_outlier_budget());
    if (all) {
      EXPECT_EQ(st.key_clipped, 0);
    }
    std::vector<float> k(size_t(n) * D);
    cache.decode_keys(0, 0, n, k.data());
    // What compression received: the window's fp16 post-RoPE keys rotated back (kv/windowed_cache.h);
    // outliers are kept as fp16 of those.
    std::vector<float> received(a.k.begin(), a.k.begin() + size_t(n) * D);
    for (int t = 0; t < n; ++t) {
      float* r = received.data() + size_t(t) * D;
      g.rope.apply(r, g.n_head_kv, pos[t]);
      for (int c = 0; c < D; ++c) r[c] = fp16_to_float(float_to_fp16(r[c]));
      g.rope.apply(r, g.n_head_kv, -pos[t]);
    }
    for (int t = 0; t < n; t += 3) {
      EXPECT_NEAR(received[size_t(t) * D + (t * 7) % D], 700.0f, 0.5f);
      EXPECT_EQ(k[size_t(t) * D + (t * 7) % D], fp16_to_float(float_to_fp16(received[size_t(t) * D + (t * 7) % D])));
    }
    // With keyout=all every element outside the thresholds comes back exactly.
    if (all) {
      KvQuantCalibration cal = KvQuantCalibration::load(path);
      for (int t = 0; t < n; ++t)
        for (int c = 0; c < D; ++c) {
          const float x = fp16_to_float(float_to_fp16(received[size_t(t) * D + c]));  // outliers are stored as fp16
          if (nuq_excess(x, nuq_range(cal.key_lo[c], cal.key_hi[c])) > 1.0f) {
            ASSERT_EQ(k[size_t(t) * D + c], x);
          }
        }
      const size_t want = size_t(n) * (nuq_row_bytes(D, 3) + 2) + 3 * 4 + size_t(st.key_stored) * 4;  // keys
      const size_t v = size_t(n) * (nuq_row_bytes(D, 3) + 4 + 2 * 4);                                 // values
      EXPECT_EQ(cache.bytes(), want + v + D * 4 + 15 * 4 + 15 * 4);
    } else {
      EXPECT_EQ(cache.bytes(), cache.projected_bytes(n));
    }
  }
}

TEST(KvQuantCache, ReconstructionErrorShrinksWithBits) {
  const KvGeometry g = make_geo(2, 8, 2, 128, RopeLayout::Adjacent);
  const std::string path = calib_file(g);
  double prev = 1e30;
  for (int bits : {2, 3, 4}) {
    KvQuantOptions o;
    o.bits = bits;
    o.calib = path;
    o.mode = KvExecMode::Simulated;
    OpenKvQuant cache(g, o);
    const int D = g.kv_dim(), n = 256;
    double err = 0, ref = 0;
    for (int l = 0; l < g.n_layers; ++l) {
      Acts a = make_acts(g, l, 5000, n, 7);  // held-out tokens
      std::vector<int32_t> pos(n);
      for (int i = 0; i < n; ++i) pos[i] = i;
      cache.append(l, a.k.data(), a.v.data(), pos.data(), n);
      cache.settle();
      std::vector<float> k(size_t(n) * D), v(k.size());
      cache.decode_keys(l, 0, n, k.data());
      cache.decode_values(l, 0, n, v.data());
      for (size_t i = 0; i < k.size(); ++i) {
        const double kk = fp16_to_float(float_to_fp16(a.k[i])), vv = fp16_to_float(float_to_fp16(a.v[i]));
        err += (k[i] - kk) * (k[i] - kk) + (v[i] - vv) * (v[i] - vv);
        ref += kk * kk + vv * vv;
      }
    }
    const double rel = std::sqrt(err / ref);
    EXPECT_LT(rel, prev) << bits << " bits";
    EXPECT_LT(rel, bits == 2 ? 0.35 : (bits == 3 ? 0.18 : 0.09)) << bits << " bits";
    prev = rel;
  }
}

// Feeds the same activations to both caches in calls of the given sizes, comparing every attend.
void expect_same_attention(KvCache& a, KvCache& b, const std::vector<int>& calls, float rel_tol,
                           const std::string& what) {
  const KvGeometry& g = a.geometry();
  int32_t pos = 0;
  for (size_t ci = 0; ci < calls.size(); ++ci) {
    const int n = calls[ci];
    std::vector<int32_t> positions(n);
    for (int i = 0; i < n; ++i) positions[i] = pos + i;
    for (int l = 0; l < g.n_layers; ++l) {
      Acts x = make_acts(g, l, pos, n);
      std::vector<float> oa(x.q.size()), ob(x.q.size());
      a.append(l, x.k.data(), x.v.data(), positions.data(), n);
      b.append(l, x.k.data(), x.v.data(), positions.data(), n);
      a.attend(l, x.q.data(), positions.data(), n, oa.data());
      b.attend(l, x.q.data(), positions.data(), n, ob.data());
      float err = 0.0f;
      for (size_t i = 0; i < oa.size(); ++i) {
        ASSERT_TRUE(std::isfinite(oa[i])) << what;
        err = std::max(err, std::fabs(oa[i] - ob[i]));
      }
      ASSERT_LE(err, rel_tol * std::max(max_abs(ob), 1e-3f))
          << what << ": call " << ci << " (" << n << " tokens at " << pos << "), layer " << l;
    }
    pos += n;
  }
}

TEST(KvQuantCache, NativeMatchesSimulated) {
  const std::vector<KvGeometry> geos = {make_geo(2, 4, 2, 64, RopeLayout::Adjacent),
                                        make_geo(1, 9, 3, 64, RopeLayout::HalfSplit, 100000.0),
                                        make_geo(1, 2, 2, 32, RopeLayout::Adjacent)};
  const std::vector<std::vector<int>> patterns = {{300, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
                                                  {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
                                                  {64, 64, 64, 64, 64, 64, 1, 1, 1},
                                                  {129, 50, 70, 1, 1}};
  const std::vector<std::string> all_opts = {"bits=2",
                                             "bits=3",
                                             "bits=4",
                                             "bits=2,window=16,sink=3",
                                             "bits=4,window=5,qnorm=1",
                                             "bits=3,sink=1,window=32",
                                             "bits=2,keyout=all",
                                             "bits=4,keyout=all,window=16,sink=2"};
  for (size_t gi = 0; gi < geos.size(); ++gi) {
    const KvGeometry& g = geos[gi];
    const std::string calib = calib_file(g);
    for (size_t oi = 0; oi < all_opts.size(); ++oi) {
      if (gi > 0 && oi % 3 != gi) continue;  // every option on the first geometry, a third on the others
      const std::string& opts = all_opts[oi];
      const std::string spec = "kvquant:" + opts + ",calib=" + calib;
      auto nat = make_kv_cache(spec, g);
      auto sim = make_kv_cache(spec + ",mode=simulated", g);
      for (size_t p = 0; p < patterns.size(); ++p) {
        nat->clear();
        sim->clear();
        expect_same_attention(*nat, *sim, patterns[p], 1e-5f,
                              opts + " kv_dim " + std::to_string(g.kv_dim()) + ", pattern " + std::to_string(p));
      }
    }
  }
  // Longer context: several token splits per head, block boundaries inside splits.
  const KvGeometry g = make_geo(1, 8, 2, 128, RopeLayout::HalfSplit, 500000.0);
  const std::string spec = "kvquant:bits=3,calib=" + calib_file(g);
  auto nat = make_kv_cache(spec, g);
  auto sim = make_kv_cache(spec + ",mode=simulated", g);
  expect_same_attention(*nat, *sim, {1500, 1000, 1, 1, 100, 1}, 1e-5f, spec);
}

TEST(KvQuantCache, ProjectedBytesEqualBytes) {
  const KvGeometry g = make_geo(2, 9, 3, 64, RopeLayout::HalfSplit);
  const std::string calib = calib_file(g);
  std::mt19937 rng(3);
  for (const std::string opts : {"bits=2", "bits=3", "bits=4,sink=4", "bits=3,window=48,outliers=0.01"}) {
    for (int64_t n : {1, 31, 128, 129, 300, 513}) {
      auto cache = make_kv_cache("kvquant:" + opts + ",calib=" + calib, g);
      int64_t done = 0;
      while (done < n) {
        const int c = static_cast<int>(std::min<int64_t>(n - done, 1 + rng() % 90));
        std::vector<int32_t> p(c);
        for (int i = 0; i < c; ++i) p[i] = static_cast<int32_t>(done + i);
        for (int l = 0; l < g.n_layers; ++l) {
          Acts x = make_acts(g, l, static_cast<int32_t>(done), c);
          cache->append(l, x.k.data(), x.v.data(), p.data(), c);
        }
        done += c;
      }
      dynamic_cast<WindowedCache&>(*cache).settle();
      EXPECT_EQ(cache->bytes(), cache->projected_bytes(n)) << opts << " n " << n;
    }
  }
}

TEST(KvQuantCache, BitsPerElementOfThePresets) {
  // LLaMA-2-7B geometry (kv_dim 4096): nuq<b>-1% comes to b + ~0.33 bits, as in the paper.
  const KvGeometry llama = make_geo(32, 32, 32, 128, RopeLayout::HalfSplit);
  const int D = llama.kv_dim();
  for (int bits : {2, 3, 4}) {
    auto c = make_kv_cache("kvquant:bits=" + std::to_string(bits) + ",calib=none", llama);
    const auto& kq = dynamic_cast<const KvQuantCache&>(*c);
    const double bpe = kq.bits_per_element(128 * 256, 128 * 256);
    // keys: b + 16/D (CSR ends) + round(0.01*128*D)*32/(128*D); values: b + 32/D (scale/offset) + 2*20*32/D
    const double want_k = bits + 16.0 / D + std::round(0.01 * 128 * D) * 32.0 / (128.0 * D);
    const double want_v = bits + 32.0 / D + 40 * 32.0 / D;
    EXPECT_NEAR(bpe, 0.5 * (want_k + want_v), 1e-3) << bits;
    EXPECT_NEAR(bpe, bits + 0.33, 0.02) << bits;
    // At 32K tokens (all compressed, no window) the whole cache agrees.
    EXPECT_NEAR(8.0 * c->projected_bytes(32768 + 128) / (2.0 * 32 * D * (32768 + 128)), bits + 0.33, 0.02);
  }
  // calib=none accounts memory only.
  auto c = make_kv_cache("kvquant:bits=2,calib=none", make_geo(1, 4, 2, 64, RopeLayout::Adjacent));
  Acts a = make_acts(c->geometry(), 0, 0, 200);
  std::vector<int32_t> p(200);
  for (int i = 0; i < 200; ++i) p[i] = i;
  c->append(0, a.k.data(), a.v.data(), p.data(), 200);
  EXPECT_THROW(c->append(0, a.k.data(), a.v.data(), p.data(), 1), Error);
}

TEST(KvQuantCalib, FileRoundTripAndRefusalForAnotherModel) {
  const KvGeometry g = make_geo(2, 4, 2, 64, RopeLayout::Adjacent);
  const KvQuantCalibration c = calibrate(g, 600);
  const std::string p = tmp_path("roundtrip.safetensors");
  c.save(p);
  const KvQuantCalibration r = KvQuantCalibration::load(p);
  EXPECT_EQ(r.model.name, "synthetic");
  EXPECT_EQ(r.model.n_layers, 2);
  EXPECT_EQ(r.model.n_head_kv, 2);
  EXPECT_EQ(r.model.head_dim, 64);
  EXPECT_EQ(r.n_tokens, 600);
  EXPECT_DOUBLE_EQ(r.outliers, 0.01);
  EXPECT_EQ(r.key_lo, c.key_lo);
  EXPECT_EQ(r.key_hi, c.key_hi);
  ASSERT_EQ(r.luts.size(), 3u);
  for (int b : {2, 3, 4}) {
    EXPECT_EQ(r.luts.at(b).key_centroids, c.luts.at(b).key_centroids);
    EXPECT_EQ(r.luts.at(b).value_qnorm, c.luts.at(b).value_qnorm);
    ASSERT_EQ(r.luts.at(b).key_centroids.size(), size_t(2) << b);
    for (int l = 0; l < 2; ++l) {
      const float* k = r.luts.at(b).key_centroids.data() + (l << b);
      EXPECT_TRUE(std::is_sorted(k, k + (1 << b)));
      EXPECT_GE(k[0], -1.0f);
      EXPECT_LE(k[(1 << b) - 1], 1.0f);
    }
  }
  for (size_t i = 0; i < c.key_lo.size(); ++i) ASSERT_LT(c.key_lo[i], c.key_hi[i]);
  EXPECT_NO_THROW(r.check_model(g, p, "synthetic"));
  // Another model: different layers, KV heads, head dim, RoPE theta, or name.
  for (const KvGeometry& other :
       {make_geo(3, 4, 2, 64, RopeLayout::Adjacent), make_geo(2, 4, 1, 64, RopeLayout::Adjacent),
        make_geo(2, 4, 4, 32, RopeLayout::Adjacent), make_geo(2, 4, 2, 64, RopeLayout::Adjacent, 500000.0)}) {
    try {
      make_kv_cache("kvquant:bits=2,calib=" + p, other);
      FAIL() << "accepted a calibration for another model";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(p), std::string::npos) << m;
      EXPECT_NE(m.find("synthetic"), std::string::npos) << m;
      EXPECT_NE(m.find("calibrate-kvquant"), std::string::npos) << m;
    }
  }
  EXPECT_THROW(r.check_model(g, p, "SmolLM2"), Error);
  // Outliers must match the calibration; missing bit widths are named.
  EXPECT_THROW(make_kv_cache("kvquant:bits=2,outliers=0.02,calib=" + p, g), Error);
  KvQuantCalibration only3 = c;
  only3.luts.erase(2);
  only3.luts.erase(4);
  only3.save(p);
  try {
    make_kv_cache("kvquant:bits=2,calib=" + p, g);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--bits 2"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(make_kv_cache("kvquant:bits=3,calib=" + p, g));
  // Not a calibration file at all; a missing file.
  SafetensorsWriter w;
  w.add_f32("x", {1}, {1.0f});
  w.write(p);
  EXPECT_THROW(make_kv_cache("kvquant:bits=3,calib=" + p, g), Error);
  std::filesystem::remove(p);
  try {
    make_kv_cache("kvquant:bits=3,calib=" + p, g);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(KvQuantCache, ConstantChannelsAndInputsGiveNoNaN) {
  const KvGeometry g = make_geo(1, 4, 2, 64, RopeLayout::Adjacent);
  const int D = g.kv_dim();
  // Calibration where some channels never move (and one layer sees only constants).
  KvQuantCalibrator cal(g, 0.01, 1 << 10);
  for (int t0 = 0; t0 < 512; t0 += 128) {
    Acts a = make_acts(g, 0, t0, 128);
    for (int t = 0; t < 128; ++t)
      for (int c = 0; c < D; c += 7) a.k[size_t(t) * D + c] = 0.5f;
    cal.add(0, a.k.data(), a.v.data(), 128);
  }
  const KvQuantCalibration c = cal.finish({2, 3, 4}, "constant");
  for (float x : c.luts.at(2).key_qnorm) ASSERT_TRUE(std::isfinite(x));
  const std::string p = tmp_path("constant.safetensors");
  c.save(p);
  for (int bits : {2, 3, 4}) {
    const std::string spec = "kvquant:bits=" + std::to_string(bits) + ",calib=" + p;
    for (float val : {0.0f, 0.75f, 0.5f}) {
      auto nat = make_kv_cache(spec, g);
      auto sim = make_kv_cache(spec + ",mode=simulated", g);
      int32_t pos = 0;
      for (int n : {200, 1, 1, 130, 1}) {
        std::vector<float> k(size_t(n) * D, val), v(size_t(n) * D, val), q(size_t(n) * g.q_dim(), 0.5f);
        std::vector<int32_t> pp(n);
        for (int i = 0; i < n; ++i) pp[i] = pos + i;
        std::vector<float> o1(q.size()), o2(q.size());
        nat->append(0, k.data(), v.data(), pp.data(), n);
        sim->append(0, k.data(), v.data(), pp.data(), n);
        nat->attend(0, q.data(), pp.data(), n, o1.data());
        sim->attend(0, q.data(), pp.data(), n, o2.data());
        for (size_t i = 0; i < o1.size(); ++i) {
          ASSERT_TRUE(std::isfinite(o1[i])) << spec;
          ASSERT_NEAR(o1[i], val, 1e-3f) << spec;  // per-token scale 0: the value is its offset
          ASSERT_NEAR(o2[i], o1[i], 1e-5f) << spec;
        }
        pos += n;
      }
    }
  }
  std::filesystem::remove(p);
}

TEST(KvQuantCache, BadSpecsAreRejected) {
  const KvGeometry g = make_geo(1, 4, 2, 64, RopeLayout::Adjacent);
  const std::string calib = calib_file(g);
  for (const std::string bad : {"bits=5", "bits=1", "outliers=0.6", "outliers=-0.1", "window=0", "sink=-1", "qnorm=2",
                                "keyout=some", "foo=1", "mode=exact", "bits=two"}) {
    EXPECT_THROW(make_kv_cache("kvquant:" + bad + ",calib=" + calib, g), Error) << bad;
  }
  EXPECT_THROW(make_kv_cache("kvquant:bits=2,calib=", g), Error);
  EXPECT_EQ(make_kv_cache("kvquant:bits=3,calib=" + calib, g)->spec(),
            "kvquant:bits=3,outliers=0.01,sink=0,window=128,calib=" + calib);
  EXPECT_EQ(make_kv_cache("kvquant:bits=2,qnorm=0,calib=" + calib + ",mode=simulated", g)->spec(),
            "kvquant:bits=2,outliers=0.01,sink=0,window=128,qnorm=0,calib=" + calib + ",mode=simulated");
}

}  // namespace
}  // namespace cvq
