#include "tasks/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include "commvq/kv_methods.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "model/llama_model.h"
#include "tasks/token_nll.h"

namespace cvq {

PerplexityResult run_perplexity(const LlamaModel& model, const std::vector<int32_t>& all_tokens,
                                const PerplexityOptions& opt) {
  std::shared_ptr<KvCache> cache = make_kv_cache(opt.kv_spec, model.kv_geometry());
  PerplexityEngine e;
  e.n_vocab = model.config().n_vocab;
  e.reset = [cache] { cache->clear(); };
  e.forward = [&model, cache](const int32_t* tokens, const int32_t* positions, int n) {
    return model.forward(tokens, positions, n, *cache, LlamaModel::Logits::All);
  };
  e.cache_bytes = [cache] { return cache->bytes(); };
  return run_perplexity(e, all_tokens, opt);
}

PerplexityResult run_perplexity(const PerplexityEngine& engine, const std::vector<int32_t>& all_tokens,
                                const PerplexityOptions& opt) {
  if (opt.ctx < 2) throw Error("perplexity: --ctx must be at least 2");
  if (opt.chunk < 1) throw Error("perplexity: --chunk must be at least 1");
  int64_t n_tokens = static_cast<int64_t>(all_tokens.size());
  if (opt.max_tokens > 0) n_tokens = std::min(n_tokens, opt.max_tokens);
  const int n_windows = static_cast<int>(n_tokens / opt.ctx);
  if (n_windows == 0) {
    throw Error("perplexity: the text has " + std::to_string(n_tokens) + " tokens, fewer than one window of " +
                std::to_string(opt.ctx));
  }
  PerplexityResult r;
  r.kv_spec = opt.kv_spec;
  r.n_windows = n_windows;
  r.n_tokens = static_cast<int64_t>(n_windows) * opt.ctx;
  const int V = engine.n_vocab;
  Progress progress("perplexity [" + opt.kv_spec + "]", r.n_tokens, "tokens");
  auto t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> positions;
  for (int w = 0; w < n_windows; ++w) {
    engine.reset();
    const int32_t* win = all_tokens.data() + static_cast<int64_t>(w) * opt.ctx;
    double window_nll = 0.0;
    for (int start = 0; start < opt.ctx; start += opt.chunk) {
      const int n = std::min(opt.chunk, opt.ctx - start);
      positions.resize(n);
      for (int i = 0; i < n; ++i) positions[i] = start + i;
      std::vector<float> logits = engine.forward(win + start, positions.data(), n);
      const int n_score = std::min(n, opt.ctx - 1 - start);  // the window's last token predicts nothing
      std::vector<double> nll(std::max(0, n_score));
      std::vector<int32_t> top(nll.size());
      ThreadPool::global().parallel_for(n_score, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) {
          const float* row = logits.data() + i * V;
          const LogitRowStats s = logit_row_stats(row, V);
          top[i] = s.top;
          nll[i] = token_nll(s, row, win[start + i + 1]);
        }
      });
      for (int i = 0; i < n_score; ++i) {
        window_nll += nll[i];
        ++r.n_scored;
        if (opt.keep_top1) r.top1.push_back(top[i]);
      }
      progress.update(static_cast<int64_t>(w) * opt.ctx + start + n,
                      "ppl " + std::to_string(std::exp((r.nll_sum + window_nll) / std::max<int64_t>(1, r.n_scored))));
    }
    r.kv_bytes_at_ctx = std::max(r.kv_bytes_at_ctx, engine.cache_bytes());
    r.window_nll.push_back(window_nll);
    r.nll_sum += window_nll;
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.perplexity = std::exp(r.nll_sum / static_cast<double>(r.n_scored));
  progress.finish("ppl " + std::to_string(r.perplexity));
  return r;
}

}  // namespace cvq
