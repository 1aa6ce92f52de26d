// Lora: a LoRA adapter loaded for a model (llama_adapter_lora), which contexts apply with a scale
// (Context::SetLoras in lora.cpp). A context holds the adapters it applies, so that an adapter
// disposed while applied lives on until the context sets others.
#pragma once

#include "handle_wrap.h"
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

class Lora : public HandleWrap<Lora, LoraHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Lora(const Napi::CallbackInfo &info) : HandleWrap(info, "loadLora()") {}
  // loadLora(model, path) -> Promise<Lora>
  static Napi::Value Load(const Napi::CallbackInfo &info);
  // The shared handle, or a thrown TypeError/DISPOSED error and nullptr.
  static std::shared_ptr<LoraHandle> HandleOf(const Napi::Value &value) {
    return HandleWrap::HandleOf(value, DataOf(value.Env()).lora, "the LoRA adapter");
  }
  // After the contexts that apply adapters, before the models.
  int ShutdownRank() const override { return 1; }

 private:
  Napi::Value Info(const Napi::CallbackInfo &info);
};

}  // namespace llama_napi
