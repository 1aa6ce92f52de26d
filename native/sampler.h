// Sampler: a llama.cpp sampler chain built from options.
#pragma once

#include "common.h"
#include "model.h"

namespace llama_napi {

struct SamplerHandle {
  llama_sampler *chain = nullptr;
  // The grammar sampler keeps a pointer to the vocabulary: the model must outlive the chain.
  std::shared_ptr<ModelHandle> model;
  // Set while a worker thread samples with this chain.
  std::atomic<int> in_use{0};
  SamplerHandle(llama_sampler *chain, std::shared_ptr<ModelHandle> model) : chain(chain), model(std::move(model)) {}
  ~SamplerHandle() { llama_sampler_free(chain); }
  SamplerHandle(const SamplerHandle &) = delete;
  SamplerHandle &operator=(const SamplerHandle &) = delete;
};

class Sampler : public Napi::ObjectWrap<Sampler>, public Releasable {
 public:
  static Napi::Function Define(Napi::Env env);
  // new Sampler(model, options)
  explicit Sampler(const Napi::CallbackInfo &info);
  ~Sampler() override = default;
  // The shared handle of a live, idle sampler, or a thrown error and nullptr.
  static std::shared_ptr<SamplerHandle> HandleOf(const Napi::Value &value);
  void ReleaseForShutdown() override { handle_.reset(); }
  int ShutdownRank() const override { return 1; }

 private:
  Napi::Value Sample(const Napi::CallbackInfo &info);
  Napi::Value Accept(const Napi::CallbackInfo &info);
  Napi::Value Reset(const Napi::CallbackInfo &info);
  Napi::Value Dispose(const Napi::CallbackInfo &info);
  Napi::Value Describe(const Napi::CallbackInfo &info);

  std::shared_ptr<SamplerHandle> handle_;
};

}  // namespace llama_napi
