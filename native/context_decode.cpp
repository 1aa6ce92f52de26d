// decode and decodeAndSample: one batch through llama_decode on a worker thread, then (for
// decodeAndSample) one token sampled from each listed output.
#include <algorithm>

#include "context_internal.h"
#include "drafter.h"
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
    // With a drafter: the tokens the index's sequence holds before the index's token, and the most
    // tokens to draft after it (0: none).
    std::vector<llama_token> history;
    int32_t n_draft = 0;
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
    std::vector<Drafter::Proposal> drafts = Draft();
    RunDecode(*handle_, batch_);
    int32_t n_vocab = llama_vocab_n_tokens(handle_->model->vocab);
    auto sample = [&](int32_t index, llama_token token) {
      tokens_.push_back(token);
      if (n_logprobs_ < 0) return;
      const float *logits = llama_get_logits_ith(handle_->ctx, index);
      if (logits == nullptr) throw CodedError("DECODE_FAILED", "no logits at the sampled index");
      logprobs_.push_back(ComputeLogprobs(logits, n_vocab, token, n_logprobs_));
    };
    for (size_t s = 0; s < samples_.size(); s++) {
      SampleRequest &request = samples_[s];
      if (drafts.empty()) {
        sample(request.index, llama_sampler_sample(request.sampler->chain, handle_->ctx, request.index));
        continue;
      }
      const std::vector<llama_token> ids = handle_->drafter->Verify(
          *handle_, request.sampler->chain, batch_.seq_ids[request.index], batch_.positions[request.index],
          request.index, draft_indices_[s], drafts[s], sample);
      counts_.push_back(static_cast<int32_t>(ids.size()));
      drafted_.push_back(static_cast<int32_t>(drafts[s].tokens.size()));
      accepted_.push_back(static_cast<int32_t>(ids.size()) - 1);
    }
  }

  // With drafts asked for: each sample's draft, its tokens appended to the batch (as far as the
  // batch has room) at the positions after the sample's token.
  std::vector<Drafter::Proposal> Draft() {
    std::vector<Drafter::Proposal> drafts;
    if (std::none_of(samples_.begin(), samples_.end(), [](const SampleRequest &r) { return r.n_draft > 0; }))
      return drafts;
    Drafter &drafter = *handle_->drafter;
    std::unique_ptr<ExecutionScope> draft_scope;
    if (drafter.draft) draft_scope = std::make_unique<ExecutionScope>(*drafter.draft, abort_);
    for (SampleRequest &request : samples_) {
      int32_t room = handle_->batch_capacity - static_cast<int32_t>(batch_.tokens.size());
      const llama_seq_id seq = batch_.seq_ids[request.index];
      const llama_pos position = batch_.positions[request.index];
      Drafter::Proposal proposal;
      if (request.n_draft > 0 && room > 0) {
        proposal = drafter.Propose(seq, request.history, batch_.tokens[request.index], std::min(request.n_draft, room));
      }
      draft_indices_.push_back(static_cast<int32_t>(batch_.tokens.size()));
      for (size_t i = 0; i < proposal.tokens.size(); i++)
        batch_.Add(proposal.tokens[i], position + 1 + static_cast<int32_t>(i), seq, true);
      drafts.push_back(std::move(proposal));
    }
    return drafts;
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
    if (!drafted_.empty()) {
      out.Set("counts", ToInt32Array(env, counts_));
      out.Set("drafted", ToInt32Array(env, drafted_));
      out.Set("accepted", ToInt32Array(env, accepted_));
    }
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
  // With drafts: tokens per sample (in order in tokens_), where each sample's draft starts in the
  // batch, and the tokens drafted and taken per sample.
  std::vector<int32_t> counts_;
  std::vector<int32_t> draft_indices_;
  std::vector<int32_t> drafted_;
  std::vector<int32_t> accepted_;
};

// drafts: one { history: Int32Array, nDraft } or null per sample, for a context with a drafter.
bool ReadDrafts(Napi::Env env, const Napi::Value &value, const ContextHandle &handle, const BatchInput &batch,
                std::vector<DecodeWorker::SampleRequest> &samples) {
  if (!handle.drafter) {
    ThrowError(env, "INVALID_ARGUMENT", "decodeAndSample: drafts need a drafter (setDrafter)");
    return false;
  }
  if (!value.IsArray() || value.As<Napi::Array>().Length() != samples.size()) {
    ThrowTypeError(env, "decodeAndSample: drafts must be an array with one entry per sample");
    return false;
  }
  Napi::Array drafts = value.As<Napi::Array>();
  int32_t n_vocab = llama_vocab_n_tokens(handle.model->vocab);
  for (uint32_t i = 0; i < drafts.Length(); i++) {
    Napi::Value entry = drafts.Get(i);
    if (entry.IsNull() || entry.IsUndefined()) continue;
    DecodeWorker::SampleRequest &request = samples[i];
    Napi::Value history = entry.IsObject() ? entry.As<Napi::Object>().Get("history") : env.Undefined();
    Napi::Value n_draft = entry.IsObject() ? entry.As<Napi::Object>().Get("nDraft") : env.Undefined();
    if (!history.IsTypedArray() || history.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
        !n_draft.IsNumber() ||
        history.As<Napi::Int32Array>().ElementLength() != static_cast<size_t>(batch.positions[request.index])) {
      ThrowTypeError(env, "decodeAndSample: drafts[" + std::to_string(i) +
                              "] must be { history: Int32Array of the sample's position tokens, nDraft: number }");
      return false;
    }
    Napi::Int32Array tokens = history.As<Napi::Int32Array>();
    request.history.assign(tokens.Data(), tokens.Data() + tokens.ElementLength());
    if (std::any_of(request.history.begin(), request.history.end(),
                    [&](llama_token t) { return t < 0 || t >= n_vocab; })) {
      Napi::RangeError::New(env, "decodeAndSample: a draft history holds a token out of range")
          .ThrowAsJavaScriptException();
      return false;
    }
    request.n_draft = std::max(0, n_draft.As<Napi::Number>().Int32Value());
  }
  return true;
}

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

// decodeAndSample(batch, samplers: Sampler[], indices: Int32Array, abortFlag?, nLogprobs = -1, drafts?)
//   -> Promise<{ tokens: Int32Array, logprobs?: Float32Array, top?: {ids, logprobs}[],
//                counts?, drafted?, accepted?: Int32Array }>
// One crossing per generation step: decode, then sample each listed output with its sampler. With
// drafts (a drafter attached), the drafter's tokens for a sample's sequence join the batch after
// its token, and the sample yields its tokens taken from the draft plus one (`counts` per sample).
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
  if (info.Length() > 5 && !info[5].IsUndefined() && !ReadDrafts(env, info[5], *handle, batch, samples)) {
    return env.Undefined();
  }
  pending_++;
  auto *worker = new DecodeWorker(this, handle, std::move(batch), std::move(abort), std::move(samples), n_logprobs);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace llama_napi
