// Speculative decoding's drafter: llama.cpp's common_speculative (a draft model, or n-gram lookup
// in the tokens so far) attached to a target context, which the context's speculative run
// (context_speculate.cpp) asks for draft tokens before each verifying decode.
#pragma once

#include <functional>
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
  // Per sequence, how far drafting has backed off (Taken), kept between runs.
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
  // After the verifying decode of `proposal` (its tokens at positions position + 1, ... and batch
  // indices draft_start, ...): samples with `chain` at `first` (the token at `position`), then
  // after each draft token while the sampler samples that same token (llama.cpp's
  // common_sampler_sample_and_accept_n rule), stopping after an end-of-generation token. Keeps the
  // drafts taken in the target's sequence and drops the rest, and tells the back-off. Calls
  // on_sampled(index, token) for each token sampled; returns them.
  std::vector<llama_token> Verify(ContextHandle &target, llama_sampler *chain, llama_seq_id seq_id, llama_pos position,
                                  int32_t first, int32_t draft_start, const Proposal &proposal,
                                  const std::function<void(int32_t, llama_token)> &on_sampled);
  // `taken` of the proposal's tokens were accepted: llama.cpp's drafter and the back-off learn it.
  void Taken(llama_seq_id seq_id, const Proposal &proposal, int32_t taken);

  // Brings the draft context's sequence to exactly `tokens` (those of the target's sequence):
  // keeps the common prefix and decodes the rest. On the worker thread; a failure throws.
  void SyncDraft(llama_seq_id seq_id, const std::vector<llama_token> &tokens);
  // llama-lookup's draft (common_ngram_cache_draft) of up to n_max tokens after `tokens` and
  // `last`, from their own n-grams, indexed as they grow (from scratch when the sequence starts over).
  std::vector<llama_token> LookupDraft(llama_seq_id seq_id, std::vector<llama_token> &tokens, llama_token last,
                                       int32_t n_max);
  // After a draft from a sequence synced to its history: the draft context now holds `last` and
  // the draft after it, as far as its memory says.
  void DraftDecoded(llama_seq_id seq_id, llama_token last, const std::vector<llama_token> &draft_tokens);
};

}  // namespace llama_napi
