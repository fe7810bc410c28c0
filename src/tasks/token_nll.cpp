#include "tasks/token_nll.h"

#include <cmath>

#include "tasks/generation.h"

namespace cvq {

LogitRowStats logit_row_stats(const float* row, int n_vocab) {
  const int32_t top = argmax(row, n_vocab);
  const float mx = row[top];
  double sum = 0.0;
  for (int j = 0; j < n_vocab; ++j) sum += std::exp(static_cast<double>(row[j] - mx));
  return {top, std::log(sum) + mx};
}

}  // namespace cvq
