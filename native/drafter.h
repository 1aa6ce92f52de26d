// Speculative decoding's drafter: llama.cpp's common_speculative (a draft model, or n-gram lookup
// in the tokens so far) attached to a target context, which the context's speculative run
// (context_speculate.cpp) asks for draft tokens before each verifying decode.
#pragma once

#include <vector>

#include "context.h"

struct common_speculative;

namespace llama_napi {

struct Drafter {
  enum class Kind { kModel, kNgram };
  Kind kind = Kind::kNgram;
  common_speculative *speculative = nullptr;
  // The draft model's context (kModel), used only by the target's speculative runs.
  std::shared_ptr<ContextHandle> draft;
  // Most tokens drafted per verifying decode.
  int32_t n_draft = 0;
  // Per sequence, the tokens the draft context holds at positions 0, 1, ...
  std::vector<std::vector<llama_token>> draft_cached;
  // Per sequence, how far drafting has backed off (context_speculate.cpp's Adapt), kept between runs.
  struct Backoff {
    int32_t limit = 0;   // the draft length now; 0: n_draft
    int32_t idle = 0;    // steps left without drafting
    int32_t misses = 0;  // steps in a row whose draft had nothing taken
  };
  std::vector<Backoff> backoff;

  Drafter() = default;
  ~Drafter();
  Drafter(const Drafter &) = delete;
  Drafter &operator=(const Drafter &) = delete;

  // Brings the draft context's sequence to exactly `tokens` (those of the target's sequence):
  // keeps the common prefix and decodes the rest. On the worker thread; a failure throws.
  void SyncDraft(llama_seq_id seq_id, const std::vector<llama_token> &tokens);
  // After a draft: what the draft context now holds of `tokens` (the history, the last token, and
  // the draft), read from its memory.
  void DraftDecoded(llama_seq_id seq_id, std::vector<llama_token> tokens);
};

}  // namespace llama_napi
