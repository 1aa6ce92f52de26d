// A batch of tokens from JS ({tokens, positions, seqIds, logits}): read and checked on the main
// thread, written into the context's llama_batch on the worker thread.
#pragma once

#include "common.h"

namespace llama_napi {

struct ContextHandle;

struct BatchInput {
  std::vector<int32_t> tokens;
  std::vector<int32_t> positions;
  std::vector<int32_t> seq_ids;
  std::vector<uint8_t> logits;

  // Appends one token; returns its index in the batch.
  int32_t Add(int32_t token, int32_t position, int32_t seq_id, bool logit) {
    tokens.push_back(token);
    positions.push_back(position);
    seq_ids.push_back(seq_id);
    logits.push_back(logit ? 1 : 0);
    return static_cast<int32_t>(tokens.size()) - 1;
  }
};

// Reads {tokens, positions, seqIds, logits} and checks it against the context; otherwise throws a
// TypeError or RangeError and returns false.
bool ReadBatch(Napi::Env env, const Napi::Value &value, const ContextHandle &handle, BatchInput &batch);

// Writes a checked batch into `batch` (which has room for it), each token in its one sequence.
void FillBatch(llama_batch &batch, const BatchInput &input);

}  // namespace llama_napi
