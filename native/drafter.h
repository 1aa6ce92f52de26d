// Speculative decoding's drafter: llama.cpp's common_speculative (a draft model, or n-gram lookup
// in the tokens so far) attached to a target context, which the context's speculative run
// (context_speculate.cpp) asks for draft tokens before each verifying decode.
#pragma once

#include <vector>

#include "common/common.h"
#include "common/ngram-cache.h"
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
  // Per sequence, llama-lookup's n-gram cache of the sequence's tokens (kNgram), and those tokens.
  struct NgramIndex {
    common_ngram_cache cache;
    std::vector<llama_token> tokens;
  };
  std::vector<NgramIndex> ngrams;

  Drafter() = default;
  ~Drafter();
  Drafter(const Drafter &) = delete;
  Drafter &operator=(const Drafter &) = delete;

  // A draft: the tokens, whether llama.cpp's drafter made them (not the lookup), and whether
  // drafting was tried at all (not paused by the back-off, and with room).
  struct Proposal {
    std::vector<llama_token> tokens;
    bool by_speculative = false;
    bool tried = false;
  };
  // Up to n_max tokens expected after `last` on a sequence holding `tokens`, as far as the back-off
  // allows. On the worker thread, with the draft context (if any) in an ExecutionScope.
  Proposal Propose(llama_seq_id seq_id, std::vector<llama_token> &tokens, llama_token last, int32_t n_max);
  // After verifying: `taken` of the proposal's tokens were accepted (the back-off learns from it).
  void Taken(llama_seq_id seq_id, const Proposal &proposal, int32_t taken);

  // Brings the draft context's sequence to exactly `tokens` (those of the target's sequence):
  // keeps the common prefix and decodes the rest. On the worker thread; a failure throws.
  void SyncDraft(llama_seq_id seq_id, const std::vector<llama_token> &tokens);
  // llama-lookup's draft (common_ngram_cache_draft) of up to n_max tokens after `tokens`, from the
  // n-grams of `tokens` themselves, indexed as they grow (from scratch when the sequence starts over).
  std::vector<llama_token> LookupDraft(llama_seq_id seq_id, const std::vector<llama_token> &tokens, int32_t n_max);
  // After a draft: what the draft context now holds of `tokens` (the history, the last token, and
  // the draft), read from its memory.
  void DraftDecoded(llama_seq_id seq_id, std::vector<llama_token> tokens);
};

}  // namespace llama_napi
