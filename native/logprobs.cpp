#include "logprobs.h"

#include <algorithm>
#include <cmath>

namespace llama_napi {

TokenLogprobs ComputeLogprobs(const float *logits, int32_t n_vocab, int32_t chosen, int32_t n_top) {
  float max_logit = *std::max_element(logits, logits + n_vocab);
  double sum = 0.0;
  for (int32_t i = 0; i < n_vocab; i++) sum += std::exp(static_cast<double>(logits[i] - max_logit));
  double log_sum = std::log(sum) + max_logit;
  TokenLogprobs out;
  out.chosen = static_cast<float>(logits[chosen] - log_sum);
  if (n_top > 0) {
    int32_t k = std::min(n_top, n_vocab);
    std::vector<int32_t> ids(static_cast<size_t>(n_vocab));
    for (int32_t i = 0; i < n_vocab; i++) ids[i] = i;
    std::partial_sort(ids.begin(), ids.begin() + k, ids.end(),
                      [logits](int32_t a, int32_t b) { return logits[a] > logits[b]; });
    for (int32_t i = 0; i < k; i++) {
      out.top_ids.push_back(ids[i]);
      out.top_logprobs.push_back(static_cast<float>(logits[ids[i]] - log_sum));
    }
  }
  return out;
}

}  // namespace llama_napi
