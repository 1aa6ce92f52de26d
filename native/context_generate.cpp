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
class GenerateAheadWorker : public RunAheadWorker {
 public:
  using RunAheadWorker::RunAheadWorker;

 protected:
  void Run() override {
    ExecutionScope scope(*handle_, channel_.abort);
    BatchInput step{{request_.token}, {request_.position}, {request_.seq_id}, {1}};
    for (int32_t n = 0; n < request_.max_tokens && step.positions[0] < request_.max_position; n++) {
      // Decoding token n - 1 needs JS to have handled token n - 2; an abort while waiting for it
      // still rejects below.
      if (n >= 2 && !channel_.JsCaughtUp(*handle_, n - 1) && !channel_.Stopping(*handle_)) break;
      if (channel_.stop->load()) break;
      if (channel_.Stopping(*handle_)) throw CodedError("ABORTED", "decode aborted");
      RunDecode(*handle_, step);
      steps_++;
      decoded_.push_back(step.tokens[0]);
      llama_token token = llama_sampler_sample(sampler_->chain, handle_->ctx, 0);
      sampled_.push_back(token);
      channel_.Post(n, {token}, 0, 0);
      if (request_.stop_at_eog && llama_vocab_is_eog(handle_->model->vocab, token)) break;
      step.tokens[0] = token;
      step.positions[0]++;
    }
  }
};

}  // namespace

RunAheadWorker::RunAheadWorker(Context *owner, std::shared_ptr<ContextHandle> handle,
                               std::shared_ptr<SamplerHandle> sampler, GenerateRequest request, GenerateChannel channel)
    : PromiseWorker(owner->Value()),
      owner_(owner),
      handle_(std::move(handle)),
      sampler_(std::move(sampler)),
      request_(std::move(request)),
      channel_(std::move(channel)) {
  sampler_->in_use++;
}

void RunAheadWorker::Settled() {
  channel_.on_tokens.Release();
  sampler_->in_use--;
  owner_->OperationSettled();
}

Napi::Value RunAheadWorker::Result(Napi::Env env) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("decoded", ToInt32Array(env, decoded_));
  out.Set("sampled", ToInt32Array(env, sampled_));
  out.Set("drafted", Napi::Number::New(env, drafted_));
  out.Set("accepted", Napi::Number::New(env, accepted_));
  out.Set("steps", Napi::Number::New(env, steps_));
  return out;
}

void GenerateChannel::Post(int32_t first, std::vector<int32_t> tokens, int32_t drafted, int32_t accepted) {
  on_tokens.NonBlockingCall(
      [first, tokens = std::move(tokens), drafted, accepted](Napi::Env env, Napi::Function callback) {
        callback.Call({Napi::Number::New(env, first), ToInt32Array(env, tokens), Napi::Number::New(env, drafted),
                       Napi::Number::New(env, accepted)});
      });
}

bool GenerateChannel::JsCaughtUp(const ContextHandle &handle, int32_t count) const {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
  while (__atomic_load_n(handled, __ATOMIC_ACQUIRE) < count) {
    if (Stopping(handle) || std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  return true;
}

// generateAhead({token, position, seqId, maxTokens, maxPosition, stopAtEog, history?}, sampler,
//          onTokens(first, tokens: Int32Array, drafted, accepted), handled: Int32Array(1), stopFlag,
//          abortFlag?) -> Promise<{ decoded, sampled: Int32Array, drafted, accepted }>
// With `history` (the tokens the sequence holds) and a drafter, the run is speculative
// (context_speculate.cpp). onTokens may run before or after the promise settles: `first`, the index
// of its first token, tells what it has seen.
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
  GenerateRequest request;
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
  Napi::Value history = options.Get("history");
  if (!history.IsUndefined()) {
    if (!handle->drafter) {
      ThrowError(env, "INVALID_ARGUMENT", "generateAhead: request.history needs a drafter (setDrafter)");
      return env.Undefined();
    }
    if (!history.IsTypedArray() || history.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
        history.As<Napi::Int32Array>().ElementLength() != static_cast<size_t>(request.position)) {
      ThrowTypeError(env, "generateAhead: request.history must be an Int32Array of request.position tokens");
      return env.Undefined();
    }
    Napi::Int32Array tokens = history.As<Napi::Int32Array>();
    request.history.assign(tokens.Data(), tokens.Data() + tokens.ElementLength());
    for (llama_token token : request.history) {
      if (token < 0 || token >= n_vocab) {
        Napi::RangeError::New(env, "generateAhead: request.history holds a token out of range")
            .ThrowAsJavaScriptException();
        return env.Undefined();
      }
    }
    request.speculative = true;
  }
  GenerateChannel channel{
      Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "llama-napi-generate-ahead", 0, 1),
      info[3].As<Napi::Int32Array>().Data(),
      Napi::Persistent(info[3].As<Napi::Int32Array>()),
      std::move(stop),
      info.Length() > 5 ? AbortFlag::From(info[5]) : nullptr,
  };
  pending_++;
  PromiseWorker *worker =
      request.speculative
          ? NewSpeculateWorker(this, handle, std::move(sampler), std::move(request), std::move(channel))
          : new GenerateAheadWorker(this, handle, std::move(sampler), std::move(request), std::move(channel));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace llama_napi
