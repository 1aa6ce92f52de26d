// createContext: reads the options, then creates the llama_context on a worker thread.
#include "context.h"
#include "log.h"

namespace llama_napi {

namespace {

ggml_type KvTypeByName(const std::string &name) {
  for (int i = 0; i < GGML_TYPE_COUNT; i++) {
    const char *candidate = ggml_type_name(static_cast<ggml_type>(i));
    if (candidate != nullptr && name == candidate) return static_cast<ggml_type>(i);
  }
  return GGML_TYPE_COUNT;
}

class CreateWorker : public PromiseWorker {
 public:
  CreateWorker(Napi::Env env, std::shared_ptr<ModelHandle> model, llama_context_params params)
      : PromiseWorker(env), model_(std::move(model)), params_(params) {}
  ~CreateWorker() override {
    if (ctx_ != nullptr) llama_free(ctx_);
  }

 protected:
  void Run() override {
    LogCapture capture;
    ctx_ = llama_init_from_model(model_->model, params_);
    if (ctx_ == nullptr) {
      std::string reason = capture.Summary();
      throw CodedError("CONTEXT_CREATE_FAILED", "failed to create the context" + (reason.empty() ? "" : ": " + reason));
    }
  }
  Napi::Value Result(Napi::Env env) override {
    auto *handle = new std::shared_ptr<ContextHandle>(std::make_shared<ContextHandle>(model_, ctx_));
    ctx_ = nullptr;
    Napi::Value result = DataOf(env).context.New({Napi::External<std::shared_ptr<ContextHandle>>::New(env, handle)});
    delete handle;
    return result;
  }

 private:
  std::shared_ptr<ModelHandle> model_;
  llama_context_params params_;
  llama_context *ctx_ = nullptr;
};

}  // namespace

// createContext(model, options) -> Promise<Context>
Napi::Value Context::Create(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsObject()) {
    ThrowTypeError(env, "createContext(model: Model, options: object)");
    return env.Undefined();
  }
  auto model = Model::HandleOf(info[0]);
  if (!model) return env.Undefined();
  Napi::Object options = info[1].As<Napi::Object>();
  llama_context_params params = llama_context_default_params();
  auto uint_option = [&](const char *key, uint32_t &target) {
    Napi::Value value = options.Get(key);
    if (value.IsNumber()) target = value.As<Napi::Number>().Uint32Value();
  };
  auto int_option = [&](const char *key, int32_t &target) {
    Napi::Value value = options.Get(key);
    if (value.IsNumber()) target = value.As<Napi::Number>().Int32Value();
  };
  auto bool_option = [&](const char *key, bool &target) {
    Napi::Value value = options.Get(key);
    if (value.IsBoolean()) target = value.As<Napi::Boolean>().Value();
  };
  uint_option("nCtx", params.n_ctx);
  uint_option("nBatch", params.n_batch);
  uint_option("nUbatch", params.n_ubatch);
  uint_option("nSeqMax", params.n_seq_max);
  int_option("nThreads", params.n_threads);
  int_option("nThreadsBatch", params.n_threads_batch);
  bool_option("embeddings", params.embeddings);
  bool_option("kvUnified", params.kv_unified);
  bool_option("swaFull", params.swa_full);
  bool_option("offloadKqv", params.offload_kqv);
  bool_option("noPerf", params.no_perf);
  int32_t pooling = params.pooling_type;
  int_option("poolingType", pooling);
  params.pooling_type = static_cast<enum llama_pooling_type>(pooling);
  int32_t flash = params.flash_attn_type;
  int_option("flashAttn", flash);
  params.flash_attn_type = static_cast<llama_flash_attn_type>(flash);
  for (auto [key, target] :
       {std::pair<const char *, ggml_type *>{"typeK", &params.type_k}, {"typeV", &params.type_v}}) {
    Napi::Value value = options.Get(key);
    if (!value.IsString()) continue;
    ggml_type type = KvTypeByName(value.As<Napi::String>().Utf8Value());
    if (type == GGML_TYPE_COUNT) {
      Napi::RangeError::New(env, std::string(key) + ": unknown ggml type " + value.As<Napi::String>().Utf8Value())
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    *target = type;
  }
  auto *worker = new CreateWorker(env, model, params);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace llama_napi
