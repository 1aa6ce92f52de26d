#include "projector.h"

#include "log.h"

namespace llama_napi {

namespace {

struct ProjectorOptions {
  int32_t n_threads = 4;
  bool use_gpu = true;
  int32_t flash_attn = LLAMA_FLASH_ATTN_TYPE_AUTO;
};

class LoadProjectorWorker : public PromiseWorker {
 public:
  LoadProjectorWorker(Napi::Env env, std::shared_ptr<ModelHandle> model, std::string path, ProjectorOptions options,
                      std::shared_ptr<std::atomic<bool>> abort)
      : PromiseWorker(env),
        model_(std::move(model)),
        path_(std::move(path)),
        options_(options),
        abort_(std::move(abort)) {}
  ~LoadProjectorWorker() override {
    if (mtmd_ != nullptr) mtmd_free(mtmd_);
  }

 protected:
  void Run() override {
    mtmd_context_params params = mtmd_context_params_default();
    params.use_gpu = options_.use_gpu;
    params.n_threads = options_.n_threads;
    params.print_timings = false;
    params.flash_attn_type = static_cast<llama_flash_attn_type>(options_.flash_attn);
    params.progress_callback = [](float, void *flag) {
      return !(flag && static_cast<std::atomic<bool> *>(flag)->load());
    };
    params.progress_callback_user_data = abort_.get();
    LogCapture capture;
    mtmd_ = mtmd_init_from_file(path_.c_str(), model_->model, params);
    if (mtmd_ != nullptr) return;
    if (abort_ && abort_->load()) throw CodedError("ABORTED", "loading the projector was aborted");
    std::string reason = capture.Summary();
    // mtmd checks that the projector's output is as wide as the model's input.
    if (reason.find("mismatch between text model") != std::string::npos) {
      throw CodedError("INCOMPATIBLE_MMPROJ", "the projector " + path_ + " does not fit the model: " + reason);
    }
    throw CodedError("MODEL_LOAD_FAILED",
                     "failed to load the projector " + path_ + (reason.empty() ? "" : ": " + reason));
  }

  Napi::Value Result(Napi::Env env) override {
    auto *handle = new std::shared_ptr<ProjectorHandle>(std::make_shared<ProjectorHandle>(mtmd_, model_));
    mtmd_ = nullptr;
    Napi::Value result =
        DataOf(env).projector.New({Napi::External<std::shared_ptr<ProjectorHandle>>::New(env, handle)});
    delete handle;
    return result;
  }

 private:
  std::shared_ptr<ModelHandle> model_;
  std::string path_;
  ProjectorOptions options_;
  std::shared_ptr<std::atomic<bool>> abort_;
  mtmd_context *mtmd_ = nullptr;
};

}  // namespace

Napi::Function Projector::Define(Napi::Env env) {
  Napi::Function function = DefineClass(env, "Projector",
                                        {
                                            DisposeMethod(),
                                            InstanceMethod<&Projector::Info>("info"),
                                            InstanceMethod<&Projector::Tokenize>("tokenize"),
                                        });
  DataOf(env).projector = Napi::Persistent(function);
  return function;
}

// info() -> { vision, audio, audioSampleRate (-1: none), marker, mrope }
Napi::Value Projector::Info(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = Live(env, "the projector");
  if (!handle) return env.Undefined();
  mtmd_context *mtmd = handle->mtmd;
  Napi::Object out = Napi::Object::New(env);
  out.Set("vision", mtmd_support_vision(mtmd));
  out.Set("audio", mtmd_support_audio(mtmd));
  out.Set("audioSampleRate", mtmd_get_audio_sample_rate(mtmd));
  out.Set("marker", mtmd_default_marker());
  out.Set("mrope", mtmd_decode_use_mrope(mtmd));
  return out;
}

// loadProjector(model: Model, path: string, options: { nThreads?, useGpu?, flashAttn? }, abortFlag?) ->
// Promise<Projector>
Napi::Value Projector::Load(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[1].IsString() || !info[2].IsObject()) {
    ThrowTypeError(env, "loadProjector(model: Model, path: string, options: object)");
    return env.Undefined();
  }
  auto model = Model::HandleOf(info[0]);
  if (!model) return env.Undefined();
  Napi::Object o = info[2].As<Napi::Object>();
  ProjectorOptions options;
  if (o.Get("nThreads").IsNumber()) options.n_threads = o.Get("nThreads").As<Napi::Number>().Int32Value();
  if (o.Get("useGpu").IsBoolean()) options.use_gpu = o.Get("useGpu").As<Napi::Boolean>().Value();
  if (o.Get("flashAttn").IsNumber()) options.flash_attn = o.Get("flashAttn").As<Napi::Number>().Int32Value();
  auto abort = info.Length() > 3 ? AbortFlag::From(info[3]) : nullptr;
  auto *worker =
      new LoadProjectorWorker(env, std::move(model), info[1].As<Napi::String>().Utf8Value(), options, std::move(abort));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace llama_napi
