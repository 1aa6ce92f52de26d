// What the Context's files share: each worker's hold on the context while it runs, decoding on
// the worker thread, and marking a context that llama.cpp failed inside.
#pragma once

#include "batch.h"
#include "context.h"

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

// Decodes a checked batch on the worker thread and records which outputs it kept; a failure throws
// ABORTED, CONTEXT_FULL or DECODE_FAILED (context_decode.cpp).
void RunDecode(ContextHandle &handle, const BatchInput &input);

}  // namespace llama_napi
