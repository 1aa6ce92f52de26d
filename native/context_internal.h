// What the Context's files share: each worker's hold on the context while it runs, decoding on
// the worker thread, and marking a context that llama.cpp failed inside.
#pragma once

#include "batch.h"
#include "context.h"
#include "sampler.h"

namespace llama_napi {

// Marks the handle busy for the duration of a worker's Run and points the abort callback at the
// operation's own flag.
class ExecutionScope {
 public:
  ExecutionScope(ContextHandle &handle, const std::shared_ptr<std::atomic<bool>> &abort) : handle_(handle) {
    handle_.executing.store(true);
    handle_.current_abort.store(abort.get());
  }
  ~ExecutionScope() {
    handle_.current_abort.store(nullptr);
    handle_.executing.store(false);
  }
  ExecutionScope(const ExecutionScope &) = delete;
  ExecutionScope &operator=(const ExecutionScope &) = delete;

 private:
  ContextHandle &handle_;
};

// A worker's Poison: llama.cpp aborted inside the operation, so neither the context nor its model
// may be used or freed again.
inline void PoisonContext(ContextHandle &handle) {
  handle.poisoned.store(true);
  handle.model->poisoned.store(true);
}

// A run of one sequence ahead of JavaScript (context_generate.cpp; speculative: context_speculate.cpp).
struct GenerateRequest {
  llama_token token = 0;  // sampled earlier, not yet in the KV cache
  llama_pos position = 0;
  llama_seq_id seq_id = 0;
  int32_t max_tokens = 0;
  llama_pos max_position = 0;  // decodes only below this position
  bool stop_at_eog = true;
  // With a drafter: the tokens the sequence holds (positions 0 to position - 1), to draft from.
  std::vector<llama_token> history;
  bool speculative = false;
};

// What both runs share: the JS callback each run posts tokens to, JS's count of tokens it has
// handled (Atomics.store into an Int32Array(1)), and the flags that end the run.
struct GenerateChannel {
  Napi::ThreadSafeFunction on_tokens;
  int32_t *handled = nullptr;
  Napi::Reference<Napi::Int32Array> handled_ref;
  std::shared_ptr<std::atomic<bool>> stop;
  std::shared_ptr<std::atomic<bool>> abort;

  // Posts tokens [first, first + tokens.size()) and this step's draft counts to JS, without waiting.
  void Post(int32_t first, std::vector<int32_t> tokens, int32_t drafted, int32_t accepted);
  bool Stopping(const ContextHandle &handle) const {
    return stop->load() || (abort && abort->load()) || handle.shutting_down.load();
  }
  // Whether JS has handled `count` tokens, waiting up to 2 ms (a tiny model's token is shorter
  // than JS's turn; a big model's is long enough that JS is never late).
  bool JsCaughtUp(const ContextHandle &handle, int32_t count) const;
};

// What a run's worker holds and how it settles (context_generate.cpp): it holds the sampler in use,
// ends the context's operation, and resolves with the tokens now in the KV cache, every token
// sampled, the decodes made, and (speculating) the tokens drafted and taken.
class RunAheadWorker : public PromiseWorker {
 public:
  RunAheadWorker(Context *owner, std::shared_ptr<ContextHandle> handle, std::shared_ptr<SamplerHandle> sampler,
                 GenerateRequest request, GenerateChannel channel);

 protected:
  void Settled() override;
  void Poison() override { PoisonContext(*handle_); }
  Napi::Value Result(Napi::Env env) override;

  Context *owner_;
  std::shared_ptr<ContextHandle> handle_;
  std::shared_ptr<SamplerHandle> sampler_;
  GenerateRequest request_;
  GenerateChannel channel_;
  std::vector<int32_t> decoded_;
  std::vector<int32_t> sampled_;
  int32_t drafted_ = 0;
  int32_t accepted_ = 0;
  int32_t steps_ = 0;  // decodes made
};

// The speculative run's worker (context_speculate.cpp).
PromiseWorker *NewSpeculateWorker(Context *owner, std::shared_ptr<ContextHandle> handle,
                                  std::shared_ptr<SamplerHandle> sampler, GenerateRequest request,
                                  GenerateChannel channel);

// Decodes a checked batch on the worker thread and records which outputs it kept; a failure throws
// ABORTED, CONTEXT_FULL or DECODE_FAILED (context_decode.cpp).
void RunDecode(ContextHandle &handle, const BatchInput &input);

}  // namespace llama_napi
