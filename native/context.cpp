#include "context.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "drafter.h"
#include "ggml-cpu.h"
#include "lora.h"
#include "rpc.h"

namespace llama_napi {

namespace {

bool AbortRequested(void *data) {
  auto *handle = static_cast<ContextHandle *>(data);
  std::atomic<bool> *flag = handle->current_abort.load();
  return handle->shutting_down.load() || (flag != nullptr && flag->load());
}

// Argument `index` as an int32, or -1 when it is missing or not a number (for llama.cpp's sequence
// and position arguments, -1 means all sequences or an open end).
int32_t Int32Arg(const Napi::CallbackInfo &info, size_t index) {
  return info.Length() > index && info[index].IsNumber() ? info[index].As<Napi::Number>().Int32Value() : -1;
}

}  // namespace

ContextHandle::ContextHandle(std::shared_ptr<ModelHandle> model, llama_context *ctx)
    : model(std::move(model)), ctx(ctx) {
  batch_capacity = static_cast<int32_t>(llama_n_batch(ctx));
  batch = llama_batch_init(batch_capacity, 0, 1);
  llama_set_abort_callback(ctx, AbortRequested, this);
  UseThreads(llama_n_threads(ctx), llama_n_threads_batch(ctx));
}

ContextHandle::~ContextHandle() {
  // The drafter (and a draft model's context) goes first: llama.cpp's drafter points at ctx.
  drafter.reset();
  if (poisoned.load()) return;
  // Adapters are freed after the context that applies them (llama_free reads none of them).
  llama_batch_free(batch);
  llama_free(ctx);
  if (threadpool != nullptr)
    BackendFunction<decltype(&ggml_threadpool_free)>("CPU", "ggml_threadpool_free")(threadpool);
}

void ContextHandle::UseThreads(int32_t n_threads, int32_t n_threads_batch) {
  llama_set_n_threads(ctx, n_threads, n_threads_batch);
  int32_t needed = std::max(n_threads, n_threads_batch);
  if (threadpool != nullptr && threadpool_size >= needed) return;
  auto create_pool = BackendFunction<decltype(&ggml_threadpool_new)>("CPU", "ggml_threadpool_new");
  auto free_pool = BackendFunction<decltype(&ggml_threadpool_free)>("CPU", "ggml_threadpool_free");
  // Without the CPU backend's functions ggml falls back to threads per graph: slower, still right.
  if (create_pool == nullptr || free_pool == nullptr) return;
  ggml_threadpool_params params = ggml_threadpool_params_default(needed);
  // Idle workers sleep instead of spinning: as fast here (llama-bench --poll 0 vs 50), and they
  // leave the cores to other contexts and to the rest of the process between decodes.
  params.poll = 0;
  ggml_threadpool_t fresh = create_pool(&params);
  if (fresh == nullptr) return;
  llama_attach_threadpool(ctx, fresh, nullptr);
  if (threadpool != nullptr) free_pool(threadpool);
  threadpool = fresh;
  threadpool_size = needed;
}

Napi::Function Context::Define(Napi::Env env) {
  Napi::Function function = DefineClass(env, "Context",
                                        {
                                            InstanceMethod<&Context::Dispose>("dispose"),
                                            InstanceMethod<&Context::Info>("info"),
                                            InstanceMethod<&Context::Decode>("decode"),
                                            InstanceMethod<&Context::DecodeAndSample>("decodeAndSample"),
                                            InstanceMethod<&Context::Logits>("logits"),
                                            InstanceMethod<&Context::Embeddings>("embeddings"),
                                            InstanceMethod<&Context::SequenceEmbeddings>("sequenceEmbeddings"),
                                            InstanceMethod<&Context::MemoryClear>("memoryClear"),
                                            InstanceMethod<&Context::SeqRemove>("seqRemove"),
                                            InstanceMethod<&Context::SeqCopy>("seqCopy"),
                                            InstanceMethod<&Context::SeqKeep>("seqKeep"),
                                            InstanceMethod<&Context::SeqShift>("seqShift"),
                                            InstanceMethod<&Context::SeqPosRange>("seqPosRange"),
                                            InstanceMethod<&Context::CanShift>("canShift"),
                                            InstanceMethod<&Context::StateGet>("stateGet"),
                                            InstanceMethod<&Context::StateSet>("stateSet"),
                                            InstanceMethod<&Context::StateSaveFile>("stateSaveFile"),
                                            InstanceMethod<&Context::StateLoadFile>("stateLoadFile"),
                                            InstanceMethod<&Context::GenerateAhead>("generateAhead"),
                                            InstanceMethod<&Context::EvalMedia>("evalMedia"),
                                            InstanceMethod<&Context::SetDrafter>("setDrafter"),
                                            InstanceMethod<&Context::SetLoras>("setLoras"),
                                            InstanceMethod<&Context::Perf>("perf"),
                                            InstanceMethod<&Context::PerfReset>("perfReset"),
                                            InstanceMethod<&Context::SetThreads>("setThreads"),
                                        });
  DataOf(env).context = Napi::Persistent(function);
  return function;
}

Context::Context(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Context>(info), Releasable(info.Env()) {
  if (info.Length() < 1 || !info[0].IsExternal()) {
    ThrowTypeError(info.Env(), "Context cannot be constructed directly: use createContext()");
    return;
  }
  handle_ = *info[0].As<Napi::External<std::shared_ptr<ContextHandle>>>().Data();
  reported_bytes_ = static_cast<int64_t>(llama_state_get_size(handle_->ctx));
  ReportExternalMemory(info.Env(), reported_bytes_);
}

Context::~Context() { Release(); }

void Context::Release() {
  if (!handle_) return;
  handle_.reset();
  if (reported_bytes_ != 0) {
    ReportExternalMemory(Napi::Env(OwnerEnv()), -reported_bytes_);
    reported_bytes_ = 0;
  }
}

void Context::ReleaseForShutdown() {
  if (!handle_) return;
  // The environment is going away: stop any decode and wait (bounded) for its thread to leave
  // llama.cpp before freeing the context under it.
  handle_->shutting_down.store(true);
  // A decode stuck on a dead RPC server never returns: do not wait for it.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(RpcFailed() ? 0 : 10);
  while (handle_->executing.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (handle_->executing.load()) {
    // Freeing now would crash the thread still inside llama.cpp; leak instead.
    new std::shared_ptr<ContextHandle>(handle_);
  }
  Release();
}

std::shared_ptr<ContextHandle> Context::IdleHandle(Napi::Env env) {
  if (!handle_ || dispose_requested_) {
    ThrowError(env, "DISPOSED", "the context has been disposed");
    return nullptr;
  }
  if (handle_->poisoned.load()) {
    ThrowError(env, "NATIVE_ERROR", "the context is unusable: llama.cpp failed during an earlier operation");
    return nullptr;
  }
  if (pending_ > 0) {
    ThrowError(env, "BUSY", "the context is busy with another operation");
    return nullptr;
  }
  return handle_;
}

std::shared_ptr<ContextHandle> Context::BeginOperation(Napi::Env env) {
  auto handle = IdleHandle(env);
  if (handle) pending_++;
  return handle;
}

void Context::OperationSettled() {
  pending_--;
  if (pending_ == 0 && dispose_requested_) Release();
}

Napi::Value Context::Dispose(const Napi::CallbackInfo &info) {
  if (!handle_) return info.Env().Undefined();
  if (pending_ > 0) {
    // Stop the decode in flight; the handle is freed when it settles.
    dispose_requested_ = true;
    handle_->shutting_down.store(true);
  } else {
    Release();
  }
  return info.Env().Undefined();
}

Napi::Value Context::Info(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!handle_) {
    ThrowError(env, "DISPOSED", "the context has been disposed");
    return env.Undefined();
  }
  llama_context *ctx = handle_->ctx;
  Napi::Object out = Napi::Object::New(env);
  out.Set("nCtx", llama_n_ctx(ctx));
  out.Set("nCtxSeq", llama_n_ctx_seq(ctx));
  out.Set("nBatch", llama_n_batch(ctx));
  out.Set("nUbatch", llama_n_ubatch(ctx));
  out.Set("nSeqMax", llama_n_seq_max(ctx));
  out.Set("nThreads", llama_n_threads(ctx));
  out.Set("nThreadsBatch", llama_n_threads_batch(ctx));
  out.Set("poolingType", static_cast<int32_t>(llama_pooling_type(ctx)));
  out.Set("nEmbd", llama_model_n_embd_out(handle_->model->model));
  out.Set("stateSize", Napi::Number::New(env, static_cast<double>(reported_bytes_)));
  return out;
}

// logits(index) -> Float32Array (a copy of the output row at that batch index)
Napi::Value Context::Logits(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = IdleHandle(env);
  if (!handle) return env.Undefined();
  int32_t index = Int32Arg(info, 0);
  if (index < 0 || static_cast<size_t>(index) >= handle->outputs.size() || !handle->outputs[index]) {
    Napi::RangeError::New(env, "logits: batch index " + std::to_string(index) + " has no logits from the last decode")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const float *row = llama_get_logits_ith(handle->ctx, index);
  if (row == nullptr) {
    ThrowError(env, "DECODE_FAILED", "no logits available");
    return env.Undefined();
  }
  size_t n_vocab = static_cast<size_t>(llama_vocab_n_tokens(handle->model->vocab));
  Napi::Float32Array out = Napi::Float32Array::New(env, n_vocab);
  std::copy(row, row + n_vocab, out.Data());
  return out;
}

// embeddings(index) -> Float32Array: the embedding of one batch position (pooling none).
Napi::Value Context::Embeddings(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = IdleHandle(env);
  if (!handle) return env.Undefined();
  int32_t index = Int32Arg(info, 0);
  if (index < 0 || static_cast<size_t>(index) >= handle->outputs.size() || !handle->outputs[index]) {
    Napi::RangeError::New(env, "embeddings: batch index " + std::to_string(index) + " has no output")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const float *row = llama_get_embeddings_ith(handle->ctx, index);
  if (row == nullptr) {
    ThrowError(env, "DECODE_FAILED", "no embeddings: create the context with embeddings enabled");
    return env.Undefined();
  }
  size_t n_embd = static_cast<size_t>(llama_model_n_embd_out(handle->model->model));
  Napi::Float32Array out = Napi::Float32Array::New(env, n_embd);
  std::copy(row, row + n_embd, out.Data());
  return out;
}

// sequenceEmbeddings(seqId) -> Float32Array: the pooled embedding of a sequence (rank pooling: its scores).
Napi::Value Context::SequenceEmbeddings(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = IdleHandle(env);
  if (!handle) return env.Undefined();
  int32_t seq = Int32Arg(info, 0);
  if (seq < 0 || seq >= static_cast<int32_t>(llama_n_seq_max(handle->ctx))) {
    Napi::RangeError::New(env, "sequenceEmbeddings: seqId out of range").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (llama_pooling_type(handle->ctx) == LLAMA_POOLING_TYPE_NONE) {
    ThrowError(env, "DECODE_FAILED", "sequence embeddings need a pooling type (the context pools none)");
    return env.Undefined();
  }
  const float *row = llama_get_embeddings_seq(handle->ctx, seq);
  if (row == nullptr) {
    ThrowError(env, "DECODE_FAILED", "no embeddings for sequence " + std::to_string(seq));
    return env.Undefined();
  }
  // Rank pooling leaves one score per classifier output, not an embedding.
  const llama_model *model = handle->model->model;
  size_t n_out = llama_pooling_type(handle->ctx) == LLAMA_POOLING_TYPE_RANK ? llama_model_n_cls_out(model)
                                                                            : llama_model_n_embd_out(model);
  Napi::Float32Array out = Napi::Float32Array::New(env, n_out);
  std::copy(row, row + n_out, out.Data());
  return out;
}

Napi::Value Context::MemoryClear(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = IdleHandle(env);
  if (!handle) return env.Undefined();
  llama_memory_clear(llama_get_memory(handle->ctx), true);
  handle->outputs.clear();
  return env.Undefined();
}

// seqRemove(seqId, p0, p1) -> boolean   (seqId < 0: all sequences; p < 0: open end)
Napi::Value Context::SeqRemove(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = IdleHandle(env);
  if (!handle) return env.Undefined();
  bool removed =
      llama_memory_seq_rm(llama_get_memory(handle->ctx), Int32Arg(info, 0), Int32Arg(info, 1), Int32Arg(info, 2));
  return Napi::Boolean::New(env, removed);
}

// seqCopy(src, dst, p0, p1)
Napi::Value Context::SeqCopy(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = IdleHandle(env);
  if (!handle) return env.Undefined();
  llama_memory_seq_cp(llama_get_memory(handle->ctx), Int32Arg(info, 0), Int32Arg(info, 1), Int32Arg(info, 2),
                      Int32Arg(info, 3));
  return env.Undefined();
}

Napi::Value Context::SeqKeep(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = IdleHandle(env);
  if (!handle) return env.Undefined();
  llama_memory_seq_keep(llama_get_memory(handle->ctx), Int32Arg(info, 0));
  return env.Undefined();
}

// seqShift(seqId, p0, p1, delta): adds delta to the positions in [p0, p1).
Napi::Value Context::SeqShift(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = IdleHandle(env);
  if (!handle) return env.Undefined();
  llama_memory_t memory = llama_get_memory(handle->ctx);
  if (!llama_memory_can_shift(memory)) {
    ThrowError(env, "NATIVE_ERROR", "this context's memory cannot shift positions");
    return env.Undefined();
  }
  llama_memory_seq_add(memory, Int32Arg(info, 0), Int32Arg(info, 1), Int32Arg(info, 2), Int32Arg(info, 3));
  return env.Undefined();
}

// seqPosRange(seqId) -> [min, max] (both -1 when the sequence is empty)
Napi::Value Context::SeqPosRange(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = IdleHandle(env);
  if (!handle) return env.Undefined();
  llama_memory_t memory = llama_get_memory(handle->ctx);
  int32_t seq = Int32Arg(info, 0);
  Napi::Array out = Napi::Array::New(env, 2);
  out[0u] = llama_memory_seq_pos_min(memory, seq);
  out[1u] = llama_memory_seq_pos_max(memory, seq);
  return out;
}

Napi::Value Context::CanShift(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = IdleHandle(env);
  if (!handle) return env.Undefined();
  return Napi::Boolean::New(env, llama_memory_can_shift(llama_get_memory(handle->ctx)));
}

Napi::Value Context::Perf(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = IdleHandle(env);
  if (!handle) return env.Undefined();
  llama_perf_context_data data = llama_perf_context(handle->ctx);
  Napi::Object out = Napi::Object::New(env);
  out.Set("startMs", data.t_start_ms);
  out.Set("loadMs", data.t_load_ms);
  out.Set("promptEvalMs", data.t_p_eval_ms);
  out.Set("evalMs", data.t_eval_ms);
  out.Set("promptTokens", data.n_p_eval);
  out.Set("evalTokens", data.n_eval);
  out.Set("reusedGraphs", data.n_reused);
  return out;
}

Napi::Value Context::PerfReset(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = IdleHandle(env);
  if (!handle) return env.Undefined();
  llama_perf_context_reset(handle->ctx);
  return env.Undefined();
}

// setThreads(nThreads, nThreadsBatch)
Napi::Value Context::SetThreads(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = IdleHandle(env);
  if (!handle) return env.Undefined();
  int32_t n_threads = Int32Arg(info, 0);
  int32_t n_threads_batch = Int32Arg(info, 1);
  if (n_threads < 1 || n_threads_batch < 1) {
    Napi::RangeError::New(env, "setThreads: thread counts must be >= 1").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  handle->UseThreads(n_threads, n_threads_batch);
  return env.Undefined();
}

}  // namespace llama_napi
