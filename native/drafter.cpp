#include "drafter.h"

#include <algorithm>
#include <stdexcept>

#include "common/speculative.h"
#include "context_internal.h"
#include "log.h"

namespace llama_napi {

Drafter::~Drafter() { common_speculative_free(speculative); }

void Drafter::SyncDraft(llama_seq_id seq_id, const std::vector<llama_token> &tokens) {
  std::vector<llama_token> &cached = draft_cached[seq_id];
  size_t keep = 0;
  while (keep < cached.size() && keep < tokens.size() && cached[keep] == tokens[keep]) keep++;
  llama_memory_t memory = llama_get_memory(draft->ctx);
  if (keep < cached.size() && !llama_memory_seq_rm(memory, seq_id, static_cast<llama_pos>(keep), -1)) {
    // A memory that cannot drop a tail (recurrent) starts over.
    llama_memory_seq_rm(memory, seq_id, -1, -1);
    keep = 0;
  }
  cached.resize(keep);
  llama_batch &batch = draft->batch;
  for (size_t start = keep; start < tokens.size(); start += draft->batch_capacity) {
    size_t end = std::min(tokens.size(), start + static_cast<size_t>(draft->batch_capacity));
    BatchInput input;
    for (size_t i = start; i < end; i++) input.Add(tokens[i], static_cast<int32_t>(i), seq_id, false);
    FillBatch(batch, input);
    // llama.cpp's drafter mirrors what the target decodes (for a draft model: the same batch).
    if (!common_speculative_process(speculative, batch)) {
      cached.clear();
      llama_memory_seq_rm(memory, seq_id, -1, -1);
      throw CodedError("DECODE_FAILED", "the draft model failed to decode the prompt");
    }
    cached.insert(cached.end(), tokens.begin() + start, tokens.begin() + end);
  }
}

std::vector<llama_token> Drafter::LookupDraft(llama_seq_id seq_id, std::vector<llama_token> &tokens, llama_token last,
                                              int32_t n_max) {
  NgramIndex &index = ngrams[seq_id];
  tokens.push_back(last);
  bool extends =
      index.tokens.size() <= tokens.size() && std::equal(index.tokens.begin(), index.tokens.end(), tokens.begin());
  if (!extends) index = NgramIndex{};
  // As llama-lookup: the whole token list, the n-grams that end in its new tokens.
  common_ngram_cache_update(index.cache, LLAMA_NGRAM_MIN, LLAMA_NGRAM_MAX, tokens,
                            static_cast<int>(tokens.size() - index.tokens.size()), false);
  index.tokens.insert(index.tokens.end(), tokens.begin() + index.tokens.size(), tokens.end());
  std::vector<llama_token> draft{last};
  common_ngram_cache none;
  common_ngram_cache_draft(tokens, draft, n_max, LLAMA_NGRAM_MIN, LLAMA_NGRAM_MAX, index.cache, none, none);
  tokens.pop_back();
  draft.erase(draft.begin());
  return draft;
}

void Drafter::DraftDecoded(llama_seq_id seq_id, llama_token last, const std::vector<llama_token> &draft_tokens) {
  std::vector<llama_token> &cached = draft_cached[seq_id];
  cached.push_back(last);
  cached.insert(cached.end(), draft_tokens.begin(), draft_tokens.end());
  llama_pos held = llama_memory_seq_pos_max(llama_get_memory(draft->ctx), seq_id) + 1;
  cached.resize(std::min(cached.size(), static_cast<size_t>(std::max(held, 0))));
}

Drafter::Proposal Drafter::Propose(llama_seq_id seq_id, std::vector<llama_token> &tokens, llama_token last,
                                   int32_t n_max) {
  Proposal proposal;
  Backoff &state = backoff[seq_id];
  if (state.limit == 0) state.limit = n_draft;
  if (state.idle > 0) {
    state.idle--;
    return proposal;
  }
  n_max = std::min(n_max, state.limit);
  if (n_max <= 0) return proposal;
  proposal.tried = true;
  std::vector<llama_token> &draft_tokens = proposal.tokens;
  if (draft) SyncDraft(seq_id, tokens);
  common_speculative_get_draft_params(speculative, seq_id) = {
      /* .drafting = */ true,
      /* .n_max    = */ n_max,
      /* .n_past   = */ static_cast<llama_pos>(tokens.size()),
      /* .id_last  = */ last,
      /* .prompt   = */ &tokens,
      /* .result   = */ &draft_tokens,
  };
  common_speculative_draft(speculative);
  if (static_cast<int32_t>(draft_tokens.size()) > n_max) draft_tokens.resize(n_max);
  proposal.by_speculative = !draft_tokens.empty();
  if (draft_tokens.empty() && kind == Kind::kNgram) draft_tokens = LookupDraft(seq_id, tokens, last, n_max);
  // The draft model decoded `last` and each draft token but the final one.
  if (draft) DraftDecoded(seq_id, last, draft_tokens);
  return proposal;
}

// Drafting backs off where it misses, so that a step costs no more than a plain decode where
// nothing is accepted (a verifying decode of many tokens costs more than one of one token, and a
// draft model decodes even when it proposes nothing): the length halves after a draft with
// nothing taken, and after misses in a row drafting pauses for 2, 4, ... up to 32 steps. An
// n-gram lookup that finds nothing costs nothing and is not a miss. Kept per sequence.
std::vector<llama_token> Drafter::Verify(ContextHandle &target, llama_sampler *chain, llama_seq_id seq_id,
                                         llama_pos position, int32_t first, int32_t draft_start,
                                         const Proposal &proposal,
                                         const std::function<void(int32_t, llama_token)> &on_sampled) {
  const std::vector<llama_token> &draft_tokens = proposal.tokens;
  std::vector<llama_token> ids;
  int32_t index = first;
  for (size_t i = 0; i <= draft_tokens.size(); i++) {
    llama_token id = llama_sampler_sample(chain, target.ctx, index);
    ids.push_back(id);
    on_sampled(index, id);
    if (i == draft_tokens.size() || id != draft_tokens[i] || llama_vocab_is_eog(target.model->vocab, id)) break;
    index = draft_start + static_cast<int32_t>(i);
  }
  const int32_t taken = static_cast<int32_t>(ids.size()) - 1;
  Taken(seq_id, proposal, taken);
  // The drafts taken stay in the KV cache after the token at `position`; the rest go.
  llama_memory_seq_rm(llama_get_memory(target.ctx), seq_id, position + 1 + taken, -1);
  return ids;
}

void Drafter::Taken(llama_seq_id seq_id, const Proposal &proposal, int32_t taken) {
  // llama.cpp's drafter hears how its own draft went.
  if (proposal.by_speculative) common_speculative_accept(speculative, seq_id, static_cast<uint16_t>(taken));
  if (!proposal.tried) return;
  Backoff &state = backoff[seq_id];
  size_t drafted = proposal.tokens.size();
  if (drafted > 0 && taken == static_cast<int32_t>(drafted)) {
    state.limit = std::min(n_draft, state.limit * 2);
  } else if (drafted > 0 && taken == 0) {
    state.limit = std::max(1, state.limit / 2);
  }
  if (taken > 0 || (drafted == 0 && kind == Kind::kNgram)) {
    state.misses = 0;
    return;
  }
  if (++state.misses >= 2) state.idle = std::min(32, 1 << std::min(state.misses - 1, 5));
}

std::shared_ptr<ContextHandle> Context::HandleOf(const Napi::Value &value) {
  Napi::Env env = value.Env();
  if (!IsInstance(value, DataOf(env).context)) {
    ThrowTypeError(env, "expected a Context");
    return nullptr;
  }
  return Unwrap(value.As<Napi::Object>())->IdleHandle(env);
}

// setDrafter(options: {type: "model" | "ngram", nDraft, pMin, ngramSize} | null, draft?: Context)
// Attaches llama.cpp's speculative drafting to this context (null detaches it). A draft model's
// context must have as many sequences as this one, and the two models one vocabulary.
Napi::Value Context::SetDrafter(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = IdleHandle(env);
  if (!handle) return env.Undefined();
  if (info.Length() < 1 || info[0].IsNull() || info[0].IsUndefined()) {
    handle->drafter.reset();
    return env.Undefined();
  }
  if (!info[0].IsObject()) {
    ThrowTypeError(env, "setDrafter(options: object | null, draft?: Context)");
    return env.Undefined();
  }
  Napi::Object options = info[0].As<Napi::Object>();
  // The defaults are lib/core/run-ahead.ts's DRAFTER_DEFAULTS: JavaScript passes every number.
  for (const char *key : {"nDraft", "pMin", "ngramSize"}) {
    if (!options.Get(key).IsNumber()) {
      ThrowTypeError(env, std::string("setDrafter: options.") + key + " must be a number");
      return env.Undefined();
    }
  }
  auto number = [&](const char *key) { return options.Get(key).As<Napi::Number>().DoubleValue(); };
  auto drafter = std::make_shared<Drafter>();
  drafter->n_draft = static_cast<int32_t>(number("nDraft"));
  if (drafter->n_draft < 1 || drafter->n_draft >= handle->batch_capacity) {
    Napi::RangeError::New(env, "setDrafter: nDraft must be at least 1 and below the batch size")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint32_t n_seq = llama_n_seq_max(handle->ctx);
  common_params_speculative params;
  std::string type = options.Get("type").ToString().Utf8Value();
  if (type == "model") {
    if (info.Length() < 2) {
      ThrowTypeError(env, "setDrafter: a draft model needs its context");
      return env.Undefined();
    }
    drafter->draft = HandleOf(info[1]);
    if (!drafter->draft) return env.Undefined();
    if (drafter->draft == handle || llama_n_seq_max(drafter->draft->ctx) != n_seq) {
      Napi::RangeError::New(env, "setDrafter: the draft context must be another context with as many sequences")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    drafter->kind = Drafter::Kind::kModel;
    params.types = {COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE};
    params.draft.n_max = drafter->n_draft;
    params.draft.n_min = 0;
    params.draft.p_min = static_cast<float>(number("pMin"));
    params.draft.ctx_tgt = handle->ctx;
    params.draft.ctx_dft = drafter->draft->ctx;
    drafter->draft_cached.resize(n_seq);
  } else if (type == "ngram") {
    // The longest recent repeat of the last tokens (prompt lookup); where there is none,
    // llama-lookup's n-gram cache (Drafter::LookupDraft), which also predicts short loops.
    params.types = {COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE};
    params.ngram_simple.size_n = static_cast<uint16_t>(number("ngramSize"));
    params.ngram_simple.size_m = static_cast<uint16_t>(drafter->n_draft);
    drafter->ngrams.resize(n_seq);
  } else {
    Napi::RangeError::New(env, "setDrafter: type must be \"model\" or \"ngram\"").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  LogCapture capture;
  try {
    drafter->speculative = common_speculative_init(params, n_seq);
  } catch (const std::exception &error) {
    // llama.cpp refuses a draft model whose vocabulary differs from the target's.
    ThrowError(env, "INCOMPATIBLE_DRAFT", std::string("the draft model cannot draft for this model: ") + error.what());
    return env.Undefined();
  }
  if (drafter->speculative == nullptr) {
    ThrowError(env, "INCOMPATIBLE_DRAFT", "llama.cpp could not set up speculative decoding: " + capture.Summary());
    return env.Undefined();
  }
  drafter->backoff.resize(n_seq);
  handle->drafter = std::move(drafter);
  return env.Undefined();
}

}  // namespace llama_napi
