#pragma once
// The one NLL routine of `perplexity` and `agreement`: per logits row, the argmax and log Σ exp
// (float differences from the row's maximum, summed in double), so both report identical numbers.
#include <cstdint>

namespace cvq {

struct LogitRowStats {
  int32_t top;       // argmax (first on ties)
  double logsumexp;  // log Σ_j exp(row[j])
};
LogitRowStats logit_row_stats(const float* row, int n_vocab);

// -log softmax(row)[target]
inline double token_nll(const LogitRowStats& s, const float* row, int32_t target) { return s.logsumexp - row[target]; }

}  // namespace cvq
