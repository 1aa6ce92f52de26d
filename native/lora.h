// Lora: a LoRA adapter loaded for a model (llama_adapter_lora), which contexts apply with a scale
// (Context::SetLoras in lora.cpp). A context holds the adapters it applies, so that an adapter
// disposed while applied lives on until the context sets others.
#pragma once

#include "model.h"

namespace llama_napi {

struct LoraHandle {
  llama_adapter_lora *adapter = nullptr;
  // llama.cpp frees an adapter with its model: the model must outlive it.
  std::shared_ptr<ModelHandle> model;
  LoraHandle(llama_adapter_lora *adapter, std::shared_ptr<ModelHandle> model)
      : adapter(adapter), model(std::move(model)) {}
  ~LoraHandle() {
    if (!model->poisoned.load()) llama_adapter_lora_free(adapter);
  }
  LoraHandle(const LoraHandle &) = delete;
  LoraHandle &operator=(const LoraHandle &) = delete;
};

class Lora : public Napi::ObjectWrap<Lora>, public Releasable {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Lora(const Napi::CallbackInfo &info);
  ~Lora() override { Release(); }
  // loadLora(model, path) -> Promise<Lora>
  static Napi::Value Load(const Napi::CallbackInfo &info);
  // The shared handle, or a thrown TypeError/DISPOSED error and nullptr.
  static std::shared_ptr<LoraHandle> HandleOf(const Napi::Value &value);
  void ReleaseForShutdown() override { Release(); }
  // After the contexts that apply adapters, before the models.
  int ShutdownRank() const override { return 1; }

 private:
  void Release() { handle_.reset(); }
  Napi::Value Dispose(const Napi::CallbackInfo &info);
  Napi::Value Info(const Napi::CallbackInfo &info);

  std::shared_ptr<LoraHandle> handle_;
};

}  // namespace llama_napi
