#include "common.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>

#include "rpc.h"

namespace llama_napi {

namespace {
std::mutex registry_mutex;
std::vector<Releasable *> registry;
}  // namespace

Releasable::Releasable(napi_env env) : env_(env) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  registry.push_back(this);
}

Releasable::~Releasable() {
  std::lock_guard<std::mutex> lock(registry_mutex);
  registry.erase(std::remove(registry.begin(), registry.end(), this), registry.end());
}

void ReleaseAllOf(napi_env env) {
  std::vector<Releasable *> owned;
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    for (Releasable *handle : registry) {
      if (handle->OwnerEnv() == env) owned.push_back(handle);
    }
  }
  std::sort(owned.begin(), owned.end(),
            [](Releasable *a, Releasable *b) { return a->ShutdownRank() < b->ShutdownRank(); });
  for (Releasable *handle : owned) handle->ReleaseForShutdown();
}

namespace {
thread_local int guarded_operations = 0;
thread_local bool abort_raised = false;

void ThrowOnAbort(const char *message) {
  std::string text = message;
  bool rpc = text.find("RPC") != std::string::npos || text.find("rpc") != std::string::npos;
  if (guarded_operations > 0) {
    abort_raised = true;
    throw CodedError(rpc ? "RPC_UNAVAILABLE" : "NATIVE_ERROR", "llama.cpp failed: " + text);
  }
  if (rpc) {
    // ggml's RPC client lost its server on its own dispatcher thread, which nothing can unwind.
    // Park that thread for good instead of ending the process; the JS side sees the failure
    // count rise and fails the operation waiting on this connection with RPC_UNAVAILABLE.
    RecordRpcFailure(text);
    for (;;) std::this_thread::sleep_for(std::chrono::hours(24));
  }
  // Anywhere else keep ggml's behaviour: print, then abort().
  std::fprintf(stderr, "%s\n", message);
}
}  // namespace

void InstallAbortGuard() { ggml_set_abort_callback(ThrowOnAbort); }

AbortGuardScope::AbortGuardScope() { guarded_operations++; }

AbortGuardScope::~AbortGuardScope() { guarded_operations--; }

bool TakeAbortRaised() {
  bool raised = abort_raised;
  abort_raised = false;
  return raised;
}

AddonData &DataOf(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

bool IsInstance(const Napi::Value &value, const Napi::FunctionReference &constructor) {
  return value.IsObject() && !constructor.IsEmpty() && value.As<Napi::Object>().InstanceOf(constructor.Value());
}

Napi::Error MakeError(Napi::Env env, const std::string &code, const std::string &message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

void ThrowError(Napi::Env env, const std::string &code, const std::string &message) {
  MakeError(env, code, message).ThrowAsJavaScriptException();
}

void ThrowTypeError(Napi::Env env, const std::string &message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
}

Napi::Function AbortFlag::Define(Napi::Env env) {
  Napi::Function function =
      DefineClass(env, "AbortFlag",
                  {InstanceMethod<&AbortFlag::Abort>("abort"), InstanceMethod<&AbortFlag::IsAborted>("isAborted")});
  DataOf(env).abort_flag = Napi::Persistent(function);
  return function;
}

AbortFlag::AbortFlag(const Napi::CallbackInfo &info) : Napi::ObjectWrap<AbortFlag>(info) {}

Napi::Value AbortFlag::Abort(const Napi::CallbackInfo &info) {
  flag_->store(true);
  return info.Env().Undefined();
}

Napi::Value AbortFlag::IsAborted(const Napi::CallbackInfo &info) {
  return Napi::Boolean::New(info.Env(), flag_->load());
}

std::shared_ptr<std::atomic<bool>> AbortFlag::From(const Napi::Value &value) {
  if (!IsInstance(value, DataOf(value.Env()).abort_flag)) return nullptr;
  return Unwrap(value.As<Napi::Object>())->flag_;
}

PromiseWorker::PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}

PromiseWorker::PromiseWorker(const Napi::Object &receiver)
    : Napi::AsyncWorker(receiver.Env()),
      deferred_(Napi::Promise::Deferred::New(receiver.Env())),
      receiver_(Napi::Persistent(receiver)) {}

void PromiseWorker::Execute() {
  AbortGuardScope guard;
  try {
    Run();
  } catch (const CodedError &err) {
    code_ = err.code;
    SetError(err.what());
  } catch (const std::exception &err) {
    SetError(err.what());
  } catch (...) {
    SetError("unknown native error");
  }
  if (TakeAbortRaised()) Poison();
}

namespace {
// While an environment is torn down (a worker thread terminated, the process exiting), node still
// completes queued async work but refuses to run JavaScript, and node-addon-api turns each refused
// call into a fatal error. A property read is refused the same way, without side effects.
bool CanRunJavaScript(napi_env env) {
  napi_value global;
  napi_value value;
  return napi_get_global(env, &global) == napi_ok &&
         napi_get_named_property(env, global, "undefined", &value) == napi_ok;
}
}  // namespace

void PromiseWorker::OnOK() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Settled();
  // Nobody is left to see the promise; the worker's destructor frees what Result would hand over.
  if (!CanRunJavaScript(env)) return;
  Napi::Value value = Result(env);
  if (env.IsExceptionPending()) {
    deferred_.Reject(env.GetAndClearPendingException().Value());
    return;
  }
  deferred_.Resolve(value);
}

void PromiseWorker::OnError(const Napi::Error &error) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Settled();
  if (!CanRunJavaScript(env)) return;
  deferred_.Reject(MakeError(env, code_, error.Message()).Value());
}

bool RequireArgs(const Napi::CallbackInfo &info, size_t count, const char *what) {
  if (info.Length() < count) {
    ThrowTypeError(info.Env(), std::string(what) + ": expected " + std::to_string(count) + " arguments");
    return false;
  }
  return true;
}

std::vector<int32_t> Int32Vector(const Napi::Value &value) {
  Napi::Int32Array array = value.As<Napi::Int32Array>();
  return std::vector<int32_t>(array.Data(), array.Data() + array.ElementLength());
}

Napi::Int32Array ToInt32Array(Napi::Env env, const std::vector<int32_t> &values) {
  Napi::Int32Array array = Napi::Int32Array::New(env, values.size());
  std::copy(values.begin(), values.end(), array.Data());
  return array;
}

void ReportExternalMemory(Napi::Env env, int64_t delta) {
  if (delta != 0) Napi::MemoryManagement::AdjustExternalMemory(env, delta);
}

}  // namespace llama_napi
