#include <chrono>
#include <thread>

#include "context_internal.h"

namespace llama_napi {

namespace {

// One sequence generated ahead of JavaScript: decode the pending token, sample the next, post it
// to JS without waiting, repeat. A step-by-step loop crosses threads three times per token, a few
// percent of a token on a busy 2-core machine; here that work overlaps with the next decode. JS
// counts the tokens it has handled in `handled`, and the run stays at most one token ahead of it,
// so that a stop (`stop`, or a stop string JS finds) wastes at most the decode in flight. When JS
// falls behind, the run ends and hands back to it rather than block a thread-pool thread on the
// main thread (process.exit joins the pool without telling anyone). The run also ends at
// max_tokens, max_position or an end-of-generation token: bounds that JS sets, never a decision on
// why generation stops, which JS alone makes (lib/completion/stopping.ts) for each token it gets.
// Settles with the tokens now in the KV cache and every token sampled, in order.
class GenerateAheadWorker : public PromiseWorker {
 public:
  struct Request {
    llama_token token = 0;  // sampled earlier, not yet in the KV cache
    llama_pos position = 0;
    llama_seq_id seq_id = 0;
    int32_t max_tokens = 0;
    llama_pos max_position = 0;  // decodes only below this position
    bool stop_at_eog = true;
  };

  GenerateAheadWorker(Context *owner, std::shared_ptr<ContextHandle> handle, std::shared_ptr<SamplerHandle> sampler,
                      Request request, Napi::ThreadSafeFunction on_token, Napi::Int32Array handled,
                      std::shared_ptr<std::atomic<bool>> stop, std::shared_ptr<std::atomic<bool>> abort)
      : PromiseWorker(owner->Value()),
        owner_(owner),
        handle_(std::move(handle)),
        sampler_(std::move(sampler)),
        request_(request),
        on_token_(std::move(on_token)),
        handled_(handled.Data()),
        handled_ref_(Napi::Persistent(handled)),
        stop_(std::move(stop)),
        abort_(std::move(abort)) {
    sampler_->in_use++;
  }

 protected:
  void Run() override {
    ExecutionScope scope(*handle_, abort_);
    BatchInput step{{request_.token}, {request_.position}, {request_.seq_id}, {1}};
    for (int32_t n = 0; n < request_.max_tokens && step.positions[0] < request_.max_position; n++) {
      // Decoding token n - 1 needs JS to have handled token n - 2; an abort while waiting for it
      // still rejects below.
      if (n >= 2 && !JsCaughtUp(n - 1) && !Stopping()) break;
      if (stop_->load()) break;
      if (Stopping()) throw CodedError("ABORTED", "decode aborted");
      RunDecode(*handle_, step);
      decoded_.push_back(step.tokens[0]);
      llama_token token = llama_sampler_sample(sampler_->chain, handle_->ctx, 0);
      sampled_.push_back(token);
      on_token_.NonBlockingCall([n, token](Napi::Env env, Napi::Function callback) {
        callback.Call({Napi::Number::New(env, n), Napi::Number::New(env, token)});
      });
      if (request_.stop_at_eog && llama_vocab_is_eog(handle_->model->vocab, token)) break;
      step.tokens[0] = token;
      step.positions[0]++;
    }
  }

  bool Stopping() const { return stop_->load() || (abort_ && abort_->load()) || handle_->shutting_down.load(); }

  // Whether JS has handled `count` tokens, waiting up to 2 ms (a tiny model's token is shorter
  // than JS's turn; a big model's is long enough that JS is never late).
  bool JsCaughtUp(int32_t count) const {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
    while (__atomic_load_n(handled_, __ATOMIC_ACQUIRE) < count) {
      if (Stopping() || std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    return true;
  }

  void Settled() override {
    on_token_.Release();
    sampler_->in_use--;
    owner_->OperationSettled();
  }

  void Poison() override { PoisonContext(*handle_); }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("decoded", ToInt32Array(env, decoded_));
    out.Set("sampled", ToInt32Array(env, sampled_));
    return out;
  }

 private:
  Context *owner_;
  std::shared_ptr<ContextHandle> handle_;
  std::shared_ptr<SamplerHandle> sampler_;
  Request request_;
  Napi::ThreadSafeFunction on_token_;
  // JS's count of handled tokens (Atomics.store), kept alive by the reference.
  int32_t *handled_;
  Napi::Reference<Napi::Int32Array> handled_ref_;
  std::shared_ptr<std::atomic<bool>> stop_;
  std::shared_ptr<std::atomic<bool>> abort_;
  std::vector<int32_t> decoded_;
  std::vector<int32_t> sampled_;
};

}  // namespace

// generateAhead({token, position, seqId, maxTokens, maxPosition, stopAtEog}, sampler, onToken(i, token),
//          handled: Int32Array(1), stopFlag, abortFlag?) -> Promise<{ decoded, sampled: Int32Array }>
// onToken may run before or after the promise settles: the index tells what it has seen.
Napi::Value Context::GenerateAhead(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!RequireArgs(info, 5, "generateAhead")) return env.Undefined();
  auto handle = IdleHandle(env);
  if (!handle) return env.Undefined();
  if (!info[0].IsObject() || !info[2].IsFunction() || !info[3].IsTypedArray() ||
      info[3].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
      info[3].As<Napi::TypedArray>().ElementLength() != 1) {
    ThrowTypeError(env,
                   "generateAhead(request: object, sampler: Sampler, onToken: function, handled: Int32Array(1), "
                   "stop: AbortFlag, abort?)");
    return env.Undefined();
  }
  auto stop = AbortFlag::From(info[4]);
  if (!stop) {
    ThrowTypeError(env, "generateAhead: stop must be an AbortFlag");
    return env.Undefined();
  }
  auto sampler = Sampler::HandleOf(info[1]);
  if (!sampler) return env.Undefined();
  if (sampler->model->model != handle->model->model) {
    ThrowTypeError(env, "generateAhead: the sampler belongs to another model");
    return env.Undefined();
  }
  Napi::Object options = info[0].As<Napi::Object>();
  GenerateAheadWorker::Request request;
  for (auto [key, target] : {std::pair<const char *, int32_t *>{"token", &request.token},
                             {"position", &request.position},
                             {"seqId", &request.seq_id},
                             {"maxTokens", &request.max_tokens},
                             {"maxPosition", &request.max_position}}) {
    Napi::Value value = options.Get(key);
    if (!value.IsNumber()) {
      ThrowTypeError(env, std::string("generateAhead: request.") + key + " must be a number");
      return env.Undefined();
    }
    *target = value.As<Napi::Number>().Int32Value();
  }
  request.stop_at_eog = options.Get("stopAtEog").ToBoolean().Value();
  int32_t n_vocab = llama_vocab_n_tokens(handle->model->vocab);
  if (request.token < 0 || request.token >= n_vocab || request.position < 0 || request.seq_id < 0 ||
      request.seq_id >= static_cast<int32_t>(llama_n_seq_max(handle->ctx))) {
    Napi::RangeError::New(env, "generateAhead: token, position or seqId out of range").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto on_token = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "llama-napi-generate-ahead", 0, 1);
  auto abort = info.Length() > 5 ? AbortFlag::From(info[5]) : nullptr;
  pending_++;
  auto *worker = new GenerateAheadWorker(this, handle, std::move(sampler), request, std::move(on_token),
                                         info[3].As<Napi::Int32Array>(), std::move(stop), std::move(abort));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace llama_napi
