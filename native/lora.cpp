#include "lora.h"

#include "context.h"
#include "log.h"

namespace llama_napi {

namespace {

class LoadLoraWorker : public PromiseWorker {
 public:
  LoadLoraWorker(Napi::Env env, std::shared_ptr<ModelHandle> model, std::string path)
      : PromiseWorker(env), model_(std::move(model)), path_(std::move(path)) {}
  ~LoadLoraWorker() override {
    if (adapter_ != nullptr) llama_adapter_lora_free(adapter_);
  }

 protected:
  void Run() override {
    LogCapture capture;
    adapter_ = llama_adapter_lora_init(model_->model, path_.c_str());
    if (adapter_ == nullptr) {
      // llama.cpp logs why: another architecture, a shape that does not fit, a cut-off file.
      std::string reason = capture.Summary();
      throw CodedError("LORA_FAILED",
                       "failed to load the LoRA adapter " + path_ + (reason.empty() ? "" : ": " + reason));
    }
  }
  Napi::Value Result(Napi::Env env) override {
    auto handle = std::make_shared<LoraHandle>(adapter_, model_);
    adapter_ = nullptr;
    return Lora::Wrap(env, DataOf(env).lora, std::move(handle));
  }

 private:
  std::shared_ptr<ModelHandle> model_;
  std::string path_;
  llama_adapter_lora *adapter_ = nullptr;
};

}  // namespace

Napi::Function Lora::Define(Napi::Env env) {
  Napi::Function function = DefineClass(env, "Lora",
                                        {
                                            DisposeMethod(),
                                            InstanceMethod<&Lora::Info>("info"),
                                        });
  DataOf(env).lora = Napi::Persistent(function);
  return function;
}

// info() -> { metadata: Record<string, string>, invocationTokens: Int32Array } (an aLoRA's tokens)
Napi::Value Lora::Info(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = Live(env, "the LoRA adapter");
  if (!handle) return env.Undefined();
  const llama_adapter_lora *adapter = handle->adapter;
  Napi::Object metadata = Napi::Object::New(env);
  std::vector<char> key(256), value(4096);
  for (int32_t i = 0; i < llama_adapter_meta_count(adapter); i++) {
    if (llama_adapter_meta_key_by_index(adapter, i, key.data(), key.size()) < 0) continue;
    if (llama_adapter_meta_val_str_by_index(adapter, i, value.data(), value.size()) < 0) continue;
    metadata.Set(key.data(), value.data());
  }
  uint64_t n_invocation = llama_adapter_get_alora_n_invocation_tokens(adapter);
  const llama_token *invocation = llama_adapter_get_alora_invocation_tokens(adapter);
  std::vector<int32_t> tokens(invocation, invocation + n_invocation);
  Napi::Object out = Napi::Object::New(env);
  out.Set("metadata", metadata);
  out.Set("invocationTokens", ToInt32Array(env, tokens));
  return out;
}

// loadLora(model: Model, path: string) -> Promise<Lora>
Napi::Value Lora::Load(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsString()) {
    ThrowTypeError(env, "loadLora(model: Model, path: string)");
    return env.Undefined();
  }
  auto model = Model::HandleOf(info[0]);
  if (!model) return env.Undefined();
  auto *worker = new LoadLoraWorker(env, std::move(model), info[1].As<Napi::String>().Utf8Value());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// setLoras(adapters: Lora[], scales: number[]): the adapters the context applies from its next
// decode on, each with its scale (llama_set_adapters_lora; an empty list: the base model).
Napi::Value Context::SetLoras(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = IdleHandle(env);
  if (!handle) return env.Undefined();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsArray() ||
      info[0].As<Napi::Array>().Length() != info[1].As<Napi::Array>().Length()) {
    ThrowTypeError(env, "setLoras(adapters: Lora[], scales: number[]) with one scale per adapter");
    return env.Undefined();
  }
  Napi::Array adapters = info[0].As<Napi::Array>();
  Napi::Array scales = info[1].As<Napi::Array>();
  std::vector<std::shared_ptr<LoraHandle>> held;
  std::vector<llama_adapter_lora *> pointers;
  std::vector<float> values;
  for (uint32_t i = 0; i < adapters.Length(); i++) {
    auto lora = Lora::HandleOf(adapters.Get(i));
    if (!lora) return env.Undefined();
    if (lora->model->model != handle->model->model) {
      ThrowTypeError(env, "setLoras: the adapter was loaded for another model");
      return env.Undefined();
    }
    Napi::Value scale = scales.Get(i);
    if (!scale.IsNumber()) {
      ThrowTypeError(env, "setLoras: each scale must be a number");
      return env.Undefined();
    }
    pointers.push_back(lora->adapter);
    values.push_back(scale.As<Napi::Number>().FloatValue());
    held.push_back(std::move(lora));
  }
  llama_set_adapters_lora(handle->ctx, pointers.data(), pointers.size(), values.data());
  handle->loras = std::move(held);
  return env.Undefined();
}

}  // namespace llama_napi
