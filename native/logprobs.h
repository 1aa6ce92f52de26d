// Log-probabilities of sampled tokens, for decodeAndSample's nLogprobs.
#pragma once

#include <cstdint>
#include <vector>

namespace llama_napi {

// Log-probabilities over the vocabulary of one output row, computed in double for stability.
struct TokenLogprobs {
  float chosen = 0.0f;
  std::vector<int32_t> top_ids;
  std::vector<float> top_logprobs;
};

// The log-probability of `chosen` among the n_vocab logits of one row, and the n_top most likely
// tokens with theirs (none when n_top is 0).
TokenLogprobs ComputeLogprobs(const float *logits, int32_t n_vocab, int32_t chosen, int32_t n_top);

}  // namespace llama_napi
