// Context: a llama_context (KV cache, logits, embeddings) over a model, with async decode.
// context.cpp holds the handle and the synchronous methods; each async job has its own file
// (context_create/_decode/_generate/_state.cpp), and context_internal.h what they share.
#pragma once

#include "common.h"
#include "model.h"
#include "sampler.h"

namespace llama_napi {

struct Drafter;
struct LoraHandle;

struct ContextHandle {
  std::shared_ptr<ModelHandle> model;
  llama_context *ctx = nullptr;
  llama_batch batch{};
  int32_t batch_capacity = 0;
  // Batch indices whose logits the last decode kept; reading any other index is refused.
  std::vector<bool> outputs;
  // The abort flag of the operation in flight, read by llama.cpp's abort callback.
  std::atomic<std::atomic<bool> *> current_abort{nullptr};
  std::atomic<bool> shutting_down{false};
  std::atomic<bool> executing{false};
  // Set when llama.cpp aborted inside an operation: the context is unusable and is leaked.
  std::atomic<bool> poisoned{false};
  std::string poison_reason;

  // ggml's worker threads for this context, kept between decodes as llama.cpp's own tools keep
  // them; without a pool ggml starts and joins threads for every graph, a third of generation speed.
  ggml_threadpool_t threadpool = nullptr;
  int32_t threadpool_size = 0;

  // Speculative decoding's drafter (drafter.h), when one is attached.
  std::shared_ptr<Drafter> drafter;
  // The LoRA adapters the context applies (lora.h), kept alive while applied.
  std::vector<std::shared_ptr<LoraHandle>> loras;

  ContextHandle(std::shared_ptr<ModelHandle> model, llama_context *ctx);
  // Sets the thread counts, growing the pool when it is too small. Only while no work is in flight.
  void UseThreads(int32_t n_threads, int32_t n_threads_batch);
  ~ContextHandle();
  ContextHandle(const ContextHandle &) = delete;
  ContextHandle &operator=(const ContextHandle &) = delete;
};

class Context : public Napi::ObjectWrap<Context>, public Releasable {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Context(const Napi::CallbackInfo &info);
  ~Context() override;
  // createContext(model, options) -> Promise<Context> (context_create.cpp)
  static Napi::Value Create(const Napi::CallbackInfo &info);
  void ReleaseForShutdown() override;
  int ShutdownRank() const override { return 0; }
  // Called by the workers on the main thread when an operation settles.
  void OperationSettled();
  // The handle for a new operation, or a thrown DISPOSED/BUSY error and nullptr.
  std::shared_ptr<ContextHandle> BeginOperation(Napi::Env env);
  std::shared_ptr<ContextHandle> IdleHandle(Napi::Env env);
  // The idle handle of a Context object, or a thrown TypeError/DISPOSED/BUSY and nullptr.
  static std::shared_ptr<ContextHandle> HandleOf(const Napi::Value &value);

 private:
  void Release();
  Napi::Value Dispose(const Napi::CallbackInfo &info);
  Napi::Value Info(const Napi::CallbackInfo &info);
  Napi::Value Logits(const Napi::CallbackInfo &info);
  Napi::Value Embeddings(const Napi::CallbackInfo &info);
  Napi::Value SequenceEmbeddings(const Napi::CallbackInfo &info);
  Napi::Value MemoryClear(const Napi::CallbackInfo &info);
  Napi::Value SeqRemove(const Napi::CallbackInfo &info);
  Napi::Value SeqCopy(const Napi::CallbackInfo &info);
  Napi::Value SeqKeep(const Napi::CallbackInfo &info);
  Napi::Value SeqShift(const Napi::CallbackInfo &info);
  Napi::Value SeqPosRange(const Napi::CallbackInfo &info);
  Napi::Value CanShift(const Napi::CallbackInfo &info);
  Napi::Value Perf(const Napi::CallbackInfo &info);
  Napi::Value PerfReset(const Napi::CallbackInfo &info);
  Napi::Value SetThreads(const Napi::CallbackInfo &info);
  // context_decode.cpp
  Napi::Value Decode(const Napi::CallbackInfo &info);
  Napi::Value DecodeAndSample(const Napi::CallbackInfo &info);
  // context_generate.cpp
  Napi::Value GenerateAhead(const Napi::CallbackInfo &info);
  Napi::Value EvalMedia(const Napi::CallbackInfo &info);
  // drafter.cpp
  Napi::Value SetDrafter(const Napi::CallbackInfo &info);
  // lora.cpp
  Napi::Value SetLoras(const Napi::CallbackInfo &info);
  // context_state.cpp
  Napi::Value StateGet(const Napi::CallbackInfo &info);
  Napi::Value StateSet(const Napi::CallbackInfo &info);
  Napi::Value StateSaveFile(const Napi::CallbackInfo &info);
  Napi::Value StateLoadFile(const Napi::CallbackInfo &info);

  std::shared_ptr<ContextHandle> handle_;
  int pending_ = 0;
  bool dispose_requested_ = false;
  int64_t reported_bytes_ = 0;
};

}  // namespace llama_napi
