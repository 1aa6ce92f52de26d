// decode and decodeAndSample: one batch through llama_decode on a worker thread, then (for
// decodeAndSample) one token sampled from each listed output.
#include <algorithm>

#include "context_internal.h"
#include "log.h"
#include "logprobs.h"

namespace llama_napi {

void RunDecode(ContextHandle &handle, const BatchInput &input) {
  llama_batch &batch = handle.batch;
  FillBatch(batch, input);
  LogCapture capture;
  int32_t status = llama_decode(handle.ctx, batch);
  // A failed decode leaves no readable outputs.
  handle.outputs.assign(input.logits.size(), false);
  if (status == 0) {
    // A GPU backend may still be computing: the promise settles when the work is done (as
    // llama-bench times it), and llama.cpp's perf counters count this decode on its own.
    llama_synchronize(handle.ctx);
    for (size_t i = 0; i < input.logits.size(); i++) handle.outputs[i] = input.logits[i] != 0;
    return;
  }
  if (status == 2) throw CodedError("ABORTED", "decode aborted");
  if (status == 1) {
    throw CodedError("CONTEXT_FULL", "the context is full: no KV cache slot for a batch of " +
                                         std::to_string(batch.n_tokens) + " tokens");
  }
  std::string reason = capture.Summary();
  throw CodedError("DECODE_FAILED",
                   "llama_decode failed with status " + std::to_string(status) + (reason.empty() ? "" : ": " + reason));
}

namespace {

class DecodeWorker : public PromiseWorker {
 public:
  struct SampleRequest {
    std::shared_ptr<SamplerHandle> sampler;
    int32_t index;
  };

  DecodeWorker(Context *owner, std::shared_ptr<ContextHandle> handle, BatchInput batch,
               std::shared_ptr<std::atomic<bool>> abort, std::vector<SampleRequest> samples, int32_t n_logprobs)
      : PromiseWorker(owner->Value()),
        owner_(owner),
        handle_(std::move(handle)),
        batch_(std::move(batch)),
        abort_(std::move(abort)),
        samples_(std::move(samples)),
        n_logprobs_(n_logprobs) {
    for (auto &request : samples_) request.sampler->in_use++;
  }

 protected:
  void Run() override {
    ExecutionScope scope(*handle_, abort_);
    if (abort_ && abort_->load()) throw CodedError("ABORTED", "decode aborted");
    RunDecode(*handle_, batch_);
    int32_t n_vocab = llama_vocab_n_tokens(handle_->model->vocab);
    for (auto &request : samples_) {
      llama_token token = llama_sampler_sample(request.sampler->chain, handle_->ctx, request.index);
      tokens_.push_back(token);
      if (n_logprobs_ >= 0) {
        const float *logits = llama_get_logits_ith(handle_->ctx, request.index);
        if (logits == nullptr) throw CodedError("DECODE_FAILED", "no logits at the sampled index");
        logprobs_.push_back(ComputeLogprobs(logits, n_vocab, token, n_logprobs_));
      }
    }
  }

  void Settled() override {
    for (auto &request : samples_) request.sampler->in_use--;
    owner_->OperationSettled();
  }

  void Poison() override { PoisonContext(*handle_); }

  Napi::Value Result(Napi::Env env) override {
    if (samples_.empty()) return env.Undefined();
    Napi::Object out = Napi::Object::New(env);
    out.Set("tokens", ToInt32Array(env, tokens_));
    if (n_logprobs_ >= 0) {
      Napi::Float32Array chosen = Napi::Float32Array::New(env, logprobs_.size());
      Napi::Array top = Napi::Array::New(env, logprobs_.size());
      for (size_t i = 0; i < logprobs_.size(); i++) {
        chosen[i] = logprobs_[i].chosen;
        Napi::Object entry = Napi::Object::New(env);
        Napi::Int32Array ids = ToInt32Array(env, logprobs_[i].top_ids);
        Napi::Float32Array values = Napi::Float32Array::New(env, logprobs_[i].top_logprobs.size());
        std::copy(logprobs_[i].top_logprobs.begin(), logprobs_[i].top_logprobs.end(), values.Data());
        entry.Set("ids", ids);
        entry.Set("logprobs", values);
        top[i] = entry;
      }
      out.Set("logprobs", chosen);
      out.Set("top", top);
    }
    return out;
  }

 private:
  Context *owner_;
  std::shared_ptr<ContextHandle> handle_;
  BatchInput batch_;
  std::shared_ptr<std::atomic<bool>> abort_;
  std::vector<SampleRequest> samples_;
  int32_t n_logprobs_;
  std::vector<int32_t> tokens_;
  std::vector<TokenLogprobs> logprobs_;
};

}  // namespace

// decode(batch, abortFlag?) -> Promise<void>
Napi::Value Context::Decode(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!RequireArgs(info, 1, "decode")) return env.Undefined();
  auto handle = IdleHandle(env);
  if (!handle) return env.Undefined();
  BatchInput batch;
  if (!ReadBatch(env, info[0], *handle, batch)) return env.Undefined();
  auto abort = info.Length() > 1 ? AbortFlag::From(info[1]) : nullptr;
  pending_++;
  auto *worker = new DecodeWorker(this, handle, std::move(batch), std::move(abort), {}, -1);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// decodeAndSample(batch, samplers: Sampler[], indices: Int32Array, abortFlag?, nLogprobs = -1)
//   -> Promise<{ tokens: Int32Array, logprobs?: Float32Array, top?: {ids, logprobs}[] }>
// One crossing per generation step: decode, then sample each listed output with its sampler.
Napi::Value Context::DecodeAndSample(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!RequireArgs(info, 3, "decodeAndSample")) return env.Undefined();
  auto handle = IdleHandle(env);
  if (!handle) return env.Undefined();
  BatchInput batch;
  if (!ReadBatch(env, info[0], *handle, batch)) return env.Undefined();
  if (!info[1].IsArray() || !info[2].IsTypedArray() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    ThrowTypeError(env, "decodeAndSample: samplers must be an array and indices an Int32Array");
    return env.Undefined();
  }
  Napi::Array samplers = info[1].As<Napi::Array>();
  std::vector<int32_t> indices = Int32Vector(info[2]);
  if (samplers.Length() != indices.size()) {
    Napi::RangeError::New(env, "decodeAndSample: one index per sampler").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<DecodeWorker::SampleRequest> samples;
  for (uint32_t i = 0; i < samplers.Length(); i++) {
    auto sampler = Sampler::HandleOf(samplers.Get(i));
    if (!sampler) return env.Undefined();
    if (sampler->model->model != handle->model->model) {
      ThrowTypeError(env, "decodeAndSample: a sampler belongs to another model");
      return env.Undefined();
    }
    int32_t index = indices[i];
    if (index < 0 || static_cast<size_t>(index) >= batch.logits.size() || batch.logits[index] == 0) {
      Napi::RangeError::New(env, "decodeAndSample: index " + std::to_string(index) + " has no logits in the batch")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    samples.push_back({sampler, index});
  }
  auto abort = info.Length() > 3 ? AbortFlag::From(info[3]) : nullptr;
  int32_t n_logprobs = info.Length() > 4 && info[4].IsNumber() ? info[4].As<Napi::Number>().Int32Value() : -1;
  pending_++;
  auto *worker = new DecodeWorker(this, handle, std::move(batch), std::move(abort), std::move(samples), n_logprobs);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace llama_napi
