// evalMedia: one media chunk of a MediaPrompt (an image or a stretch of audio) encoded by the
// projector and decoded into a sequence of the context, on a worker thread, as llama-server does
// with mtmd's helper.
#include "context_internal.h"
#include "log.h"
#include "mtmd-helper.h"
#include "projector.h"

namespace llama_napi {

namespace {

class EvalMediaWorker : public PromiseWorker {
 public:
  EvalMediaWorker(Context *owner, std::shared_ptr<ContextHandle> handle, std::shared_ptr<MediaPromptHandle> prompt,
                  size_t chunk, llama_seq_id seq_id, llama_pos n_past, std::shared_ptr<std::atomic<bool>> abort)
      : PromiseWorker(owner->Value()),
        owner_(owner),
        handle_(std::move(handle)),
        prompt_(std::move(prompt)),
        chunk_(chunk),
        seq_id_(seq_id),
        n_past_(n_past),
        abort_(std::move(abort)) {}

 protected:
  void Run() override {
    ExecutionScope scope(*handle_, abort_);
    if (abort_ && abort_->load()) throw CodedError("ABORTED", "decode aborted");
    // The projector is shared by the contexts of its model: one encode at a time.
    std::lock_guard<std::mutex> lock(prompt_->projector->encoding);
    const mtmd_input_chunk *chunk = mtmd_input_chunks_get(prompt_->chunks, chunk_);
    LogCapture capture;
    llama_context *ctx = handle_->ctx;
    int32_t status = mtmd_helper_eval_chunk_single(prompt_->projector->mtmd, ctx, chunk, n_past_, seq_id_,
                                                   static_cast<int32_t>(llama_n_batch(ctx)), false, &new_n_past_);
    // Nothing of this decode is readable as logits.
    handle_->outputs.clear();
    if (status == 0) return;
    if (abort_ && abort_->load()) throw CodedError("ABORTED", "decode aborted");
    std::string reason = capture.Summary();
    throw CodedError("DECODE_FAILED", "the media could not be decoded (status " + std::to_string(status) + ")" +
                                          (reason.empty() ? "" : ": " + reason));
  }

  void Settled() override { owner_->OperationSettled(); }
  void Poison() override { PoisonContext(*handle_); }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, new_n_past_); }

 private:
  Context *owner_;
  std::shared_ptr<ContextHandle> handle_;
  std::shared_ptr<MediaPromptHandle> prompt_;
  size_t chunk_;
  llama_seq_id seq_id_;
  llama_pos n_past_;
  std::shared_ptr<std::atomic<bool>> abort_;
  llama_pos new_n_past_ = 0;
};

}  // namespace

// evalMedia(prompt: MediaPrompt, chunk: number, seqId: number, nPast: number, abortFlag?) -> Promise<number>
// (the position after the chunk)
Napi::Value Context::EvalMedia(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!RequireArgs(info, 4, "evalMedia")) return env.Undefined();
  auto prompt = MediaPrompt::HandleOf(info[0]);
  if (!prompt) return env.Undefined();
  auto handle = IdleHandle(env);
  if (!handle) return env.Undefined();
  if (prompt->projector->model->model != handle->model->model) {
    ThrowTypeError(env, "evalMedia: the media prompt belongs to another model's projector");
    return env.Undefined();
  }
  int64_t chunk = info[1].As<Napi::Number>().Int64Value();
  int32_t seq_id = info[2].As<Napi::Number>().Int32Value();
  int32_t n_past = info[3].As<Napi::Number>().Int32Value();
  if (chunk < 0 || static_cast<size_t>(chunk) >= mtmd_input_chunks_size(prompt->chunks) ||
      mtmd_input_chunk_get_type(mtmd_input_chunks_get(prompt->chunks, chunk)) == MTMD_INPUT_CHUNK_TYPE_TEXT) {
    Napi::RangeError::New(env, "evalMedia: chunk is not a media chunk of the prompt").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (seq_id < 0 || seq_id >= static_cast<int32_t>(llama_n_seq_max(handle->ctx)) || n_past < 0) {
    Napi::RangeError::New(env, "evalMedia: seqId or nPast out of range").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto abort = info.Length() > 4 ? AbortFlag::From(info[4]) : nullptr;
  pending_++;
  auto *worker = new EvalMediaWorker(this, handle, std::move(prompt), static_cast<size_t>(chunk), seq_id, n_past,
                                     std::move(abort));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace llama_napi
