// Shared pieces of the addon: error codes, the abort flag, the worker base class.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "llama.h"

namespace llama_napi {

// An error carrying one of the LlamaError codes of lib/errors.ts.
struct CodedError : std::runtime_error {
  std::string code;
  CodedError(std::string code, const std::string &message) : std::runtime_error(message), code(std::move(code)) {}
};

Napi::Error MakeError(Napi::Env env, const std::string &code, const std::string &message);
void ThrowError(Napi::Env env, const std::string &code, const std::string &message);
void ThrowTypeError(Napi::Env env, const std::string &message);

// The native side of an AbortSignal: JS flips it, llama.cpp's abort and progress callbacks read it.
class AbortFlag : public Napi::ObjectWrap<AbortFlag> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit AbortFlag(const Napi::CallbackInfo &info);
  static std::shared_ptr<std::atomic<bool>> From(const Napi::Value &value);

 private:
  Napi::Value Abort(const Napi::CallbackInfo &info);
  Napi::Value IsAborted(const Napi::CallbackInfo &info);
  std::shared_ptr<std::atomic<bool>> flag_ = std::make_shared<std::atomic<bool>>(false);
};

// A function a ggml backend exports by name (`backend`: its registry name, "CPU", "RPC"), found
// through the backend registry: linked in by a source build, a module beside the addon in the
// portable prebuild. nullptr when that backend or function is missing.
template <typename Fn>
Fn BackendFunction(const char *backend, const char *name) {
  ggml_backend_reg_t reg = ggml_backend_reg_by_name(backend);
  return reg == nullptr ? nullptr : reinterpret_cast<Fn>(ggml_backend_reg_get_proc_address(reg, name));
}

// Per-environment state (the main thread and each worker thread have their own).
struct AddonData {
  Napi::FunctionReference abort_flag;
  Napi::FunctionReference model;
  Napi::FunctionReference context;
  Napi::FunctionReference sampler;
  Napi::FunctionReference lora;
  Napi::FunctionReference projector;
  Napi::FunctionReference media_prompt;
};
AddonData &DataOf(Napi::Env env);

// True when value is an instance of the class held in `constructor`.
bool IsInstance(const Napi::Value &value, const Napi::FunctionReference &constructor);

// Turns ggml's fatal aborts (GGML_ABORT/GGML_ASSERT) raised inside an AbortGuardScope (every async
// operation runs in one) into a CodedError on that thread, instead of ending the process; outside
// one they still abort.
void InstallAbortGuard();
class AbortGuardScope {
 public:
  AbortGuardScope();
  ~AbortGuardScope();
  AbortGuardScope(const AbortGuardScope &) = delete;
  AbortGuardScope &operator=(const AbortGuardScope &) = delete;
};
// True after an abort was turned into an error on this thread (the state it touched is suspect).
bool TakeAbortRaised();

// Base of every async operation: resolves a promise, turns CodedError into an Error with `code`.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env);
  // Keeps `receiver` (the handle's JS object) alive until the work settles.
  explicit PromiseWorker(const Napi::Object &receiver);
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  // Subclasses implement Run (worker thread, no Napi values) and Result (main thread).
  virtual void Run() = 0;
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }
  // Called on the main thread whether the work succeeded or failed.
  virtual void Settled() {}
  // Called on the worker thread when llama.cpp aborted inside Run: mark what it touched unusable.
  virtual void Poison() {}

 private:
  void Execute() final;
  void OnOK() final;
  void OnError(const Napi::Error &error) final;
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference receiver_;
  std::string code_ = "NATIVE_ERROR";
};

// Argument helpers: the TypeScript layer validates with precise messages; these are a last guard
// so that a wrong call from plain JS throws instead of crashing.
bool RequireArgs(const Napi::CallbackInfo &info, size_t count, const char *what);
std::vector<int32_t> Int32Vector(const Napi::Value &value);
Napi::Int32Array ToInt32Array(Napi::Env env, const std::vector<int32_t> &values);

// Live native handles of one environment, freed by its cleanup hook when it shuts down with
// handles still open (process exit, worker thread exit).
class Releasable {
 public:
  explicit Releasable(napi_env env);
  virtual ~Releasable();
  Releasable(const Releasable &) = delete;
  Releasable &operator=(const Releasable &) = delete;
  // Frees the native resources; called at most once per handle by the cleanup hook.
  virtual void ReleaseForShutdown() = 0;
  // Lower ranks are released first (contexts before models).
  virtual int ShutdownRank() const = 0;
  napi_env OwnerEnv() const { return env_; }

 private:
  napi_env env_;
};
void ReleaseAllOf(napi_env env);

// Reports native allocations to V8 so that GC pressure reflects them.
void ReportExternalMemory(Napi::Env env, int64_t delta);

}  // namespace llama_napi
