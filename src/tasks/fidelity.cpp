#include "tasks/fidelity.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "commvq/kv_methods.h"
#include "core/error.h"
#include "core/text_source.h"
#include "core/thread_pool.h"
#include "kv/kv_cache.h"
#include "model/llama_model.h"
#include "tasks/data_paths.h"
#include "tasks/token_nll.h"

namespace cvq {

WindowOptions WindowOptions::parse(const TaskOptions& o, bool agreement) {
  if (agreement) {
    o.allow_only({"data", "ctx", "chunk", "windows", "reference", "seed"});
  } else {
    o.allow_only({"data", "ctx", "chunk", "windows", "seed"});
  }
  WindowOptions w;
  w.data = o.get_string("data", data_path("text/wikitext-2-raw/wiki.test.raw"));
  w.ctx = static_cast<int>(o.get_int("ctx", 2048, 2, 1 << 24));
  w.chunk = static_cast<int>(o.get_int("chunk", 512, 1, 1 << 24));
  w.windows = static_cast<int>(o.get_int("windows", 4, 1, 1 << 20));
  w.reference = o.get_string("reference", "fp16");
  return w;
}

WindowTask::WindowTask(WindowOptions o, bool agreement) : o_(std::move(o)), agreement_(agreement) {
  text_ = read_text_file(o_.data);
}

nlohmann::json WindowTask::identity() const {
  nlohmann::json j = {{"task", family()},           {"data", o_.data.substr(o_.data.find_last_of('/') + 1)},
                      {"data_chars", text_.size()}, {"ctx", o_.ctx},
                      {"chunk", o_.chunk},          {"windows", o_.windows}};
  if (agreement_) j["reference"] = o_.reference;
  return j;
}

std::vector<std::string> WindowTask::input_files() const { return {o_.data}; }

const std::vector<int32_t>& WindowTask::tokens(const LlamaModel& model) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (tokens_.empty()) {
    const Tokenizer& tok = model.tokenizer();
    tokens_ = tok.encode(text_, tok.add_bos_default(), false);
    const int64_t need = static_cast<int64_t>(o_.windows) * o_.ctx;
    if (static_cast<int64_t>(tokens_.size()) < need) {
      throw Error(o_.data + ": " + std::to_string(tokens_.size()) + " tokens, fewer than " +
                  std::to_string(o_.windows) + " windows of " + std::to_string(o_.ctx));
    }
  }
  return tokens_;
}

nlohmann::json WindowTask::run_sample(int64_t w, const LlamaModel& model, KvCache& cache) {
  const auto& all = tokens(model);
  const int V = model.config().n_vocab;
  const int32_t* win = all.data() + w * o_.ctx;
  std::unique_ptr<KvCache> ref;
  if (agreement_) ref = make_kv_cache(o_.reference, model.kv_geometry());
  double nll = 0.0, ref_nll = 0.0, kl = 0.0;
  int64_t n_scored = 0, agree = 0;
  std::vector<int32_t> positions;
  for (int start = 0; start < o_.ctx; start += o_.chunk) {
    const int n = std::min(o_.chunk, o_.ctx - start);
    positions.resize(n);
    for (int i = 0; i < n; ++i) positions[i] = start + i;
    const std::vector<float> logits = model.forward(win + start, positions.data(), n, cache, LlamaModel::Logits::All);
    std::vector<float> ref_logits;
    if (ref) ref_logits = model.forward(win + start, positions.data(), n, *ref, LlamaModel::Logits::All);
    const int n_score = std::min(n, o_.ctx - 1 - start);
    if (n_score <= 0) continue;
    std::vector<double> row_nll(n_score), row_ref_nll(n_score), row_kl(n_score);
    std::vector<int> row_agree(n_score);
    ThreadPool::global().parallel_for(n_score, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) {
        const float* row = logits.data() + i * V;
        const LogitRowStats s = logit_row_stats(row, V);
        const int32_t target = win[start + i + 1];
        row_nll[i] = token_nll(s, row, target);
        if (!ref) continue;
        const float* rrow = ref_logits.data() + i * V;
        const LogitRowStats r = logit_row_stats(rrow, V);
        row_ref_nll[i] = token_nll(r, rrow, target);
        row_agree[i] = r.top == s.top;
        double k = 0.0;  // sum_j p_ref(j) (log p_ref(j) - log p(j))
        for (int j = 0; j < V; ++j) {
          const double lr = rrow[j] - r.logsumexp, lm = row[j] - s.logsumexp;
          k += std::exp(lr) * (lr - lm);
        }
        row_kl[i] = std::max(0.0, k);
      }
    });
    for (int i = 0; i < n_score; ++i) {
      nll += row_nll[i];
      ++n_scored;
      if (ref) ref_nll += row_ref_nll[i], kl += row_kl[i], agree += row_agree[i];
    }
  }
  nlohmann::json rec = {{"id", sample_id(w)},
                        {"n_scored", n_scored},
                        {"nll_sum", nll},
                        {"context_tokens", o_.ctx},
                        {"kv_bytes", cache.bytes()}};
  if (agreement_) {
    rec["agree"] = agree;
    rec["kl_sum"] = kl;
    rec["reference_nll_sum"] = ref_nll;
    rec["score"] = static_cast<double>(agree) / static_cast<double>(n_scored);
  } else {
    rec["score"] = std::exp(nll / static_cast<double>(n_scored));
  }
  return rec;
}

}  // namespace cvq
