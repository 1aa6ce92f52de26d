// Model: a loaded GGUF (weights or vocabulary only), its metadata, vocabulary and tokenizer.
// model.cpp holds the handle and its vocabulary methods, model_load.cpp the loading job.
#pragma once

#include "common.h"

namespace llama_napi {

// Owns the llama_model; shared by the Model handle, its contexts and samplers, so that a context
// keeps its model alive after model.dispose().
struct ModelHandle {
  llama_model *model = nullptr;
  const llama_vocab *vocab = nullptr;
  // Set when llama.cpp aborted while using this model (for example an RPC server died): freeing it
  // would call into the broken state again, so it is leaked instead.
  std::atomic<bool> poisoned{false};
  explicit ModelHandle(llama_model *model) : model(model), vocab(llama_model_get_vocab(model)) {}
  ~ModelHandle() {
    if (!poisoned.load()) llama_model_free(model);
  }
  ModelHandle(const ModelHandle &) = delete;
  ModelHandle &operator=(const ModelHandle &) = delete;
};

class Model : public Napi::ObjectWrap<Model>, public Releasable {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Model(const Napi::CallbackInfo &info);
  ~Model() override;
  // loadModel(path, options, onProgress?, abortFlag?) -> Promise<Model> (model_load.cpp)
  static Napi::Value Load(const Napi::CallbackInfo &info);
  // The shared handle, or a thrown DISPOSED error and nullptr.
  static std::shared_ptr<ModelHandle> HandleOf(const Napi::Value &value);
  void ReleaseForShutdown() override { Release(); }
  int ShutdownRank() const override { return 2; }

 private:
  std::shared_ptr<ModelHandle> Live(Napi::Env env);
  void Release();
  Napi::Value Dispose(const Napi::CallbackInfo &info);
  Napi::Value Info(const Napi::CallbackInfo &info);
  Napi::Value Metadata(const Napi::CallbackInfo &info);
  Napi::Value Tokenize(const Napi::CallbackInfo &info);
  Napi::Value Detokenize(const Napi::CallbackInfo &info);
  Napi::Value TokenBytes(const Napi::CallbackInfo &info);
  Napi::Value TokenText(const Napi::CallbackInfo &info);
  Napi::Value TokenAttributes(const Napi::CallbackInfo &info);
  Napi::Value IsEog(const Napi::CallbackInfo &info);
  Napi::Value ChatTemplate(const Napi::CallbackInfo &info);

  std::shared_ptr<ModelHandle> handle_;
  int64_t reported_bytes_ = 0;
};

}  // namespace llama_napi
