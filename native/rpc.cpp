#include "rpc.h"

#include <mutex>

#include "log.h"

#ifdef GGML_USE_RPC
#include "ggml-rpc.h"
#endif

namespace llama_napi {

namespace {

std::mutex failure_mutex;
std::atomic<uint32_t> failure_count{0};
std::string last_failure;

#ifdef GGML_USE_RPC
class ServerWorker : public PromiseWorker {
 public:
  ServerWorker(Napi::Env env, std::string endpoint, int32_t n_threads)
      : PromiseWorker(env), endpoint_(std::move(endpoint)), n_threads_(n_threads) {}

 protected:
  void Run() override {
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (cpu == nullptr) throw CodedError("RPC_UNAVAILABLE", "no CPU device to serve");
    LogCapture capture;
    // Serves clients one after another; returns only when the socket cannot be set up.
    ggml_backend_rpc_start_server(endpoint_.c_str(), nullptr, static_cast<size_t>(n_threads_), 1, &cpu);
    std::string reason = capture.Summary();
    throw CodedError("RPC_UNAVAILABLE", "rpc-server could not listen on " + endpoint_ +
                                            (reason.empty() ? " (address in use or not local?)" : ": " + reason));
  }

 private:
  std::string endpoint_;
  int32_t n_threads_;
};
#endif

}  // namespace

void RecordRpcFailure(const std::string &message) {
  std::lock_guard<std::mutex> lock(failure_mutex);
  last_failure = message;
  failure_count++;
}

bool RpcFailed() { return failure_count.load() > 0; }

std::vector<ggml_backend_dev_t> RpcDevices(const std::vector<std::string> &endpoints) {
  std::vector<ggml_backend_dev_t> devices;
#ifdef GGML_USE_RPC
  for (const std::string &endpoint : endpoints) {
    // Connects and shakes hands on this (guarded) thread: a server that is down or speaks another
    // protocol version becomes an RPC_UNAVAILABLE error here.
    LogCapture capture;
    ggml_backend_reg_t reg = nullptr;
    try {
      reg = ggml_backend_rpc_add_server(endpoint.c_str());
    } catch (const CodedError &err) {
      std::string reason = capture.Summary();
      if (reason.find("version mismatch") != std::string::npos) {
        throw CodedError("RPC_UNAVAILABLE", "rpc-server " + endpoint + " speaks another RPC protocol (" + reason +
                                                "); this build speaks " + std::to_string(RPC_PROTO_MAJOR_VERSION) +
                                                "." + std::to_string(RPC_PROTO_MINOR_VERSION) +
                                                ": run the rpc-server of the same llama-napi version");
      }
      throw CodedError("RPC_UNAVAILABLE", "cannot reach rpc-server " + endpoint + ": " + err.what());
    }
    if (reg == nullptr) throw CodedError("RPC_UNAVAILABLE", "rpc-server " + endpoint + " offers no devices");
    for (size_t i = 0; i < ggml_backend_reg_dev_count(reg); i++) devices.push_back(ggml_backend_reg_dev_get(reg, i));
  }
#else
  if (!endpoints.empty()) throw CodedError("UNSUPPORTED", "this build of llama-napi has no RPC backend");
#endif
  return devices;
}

Napi::Value RpcFailures(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  std::lock_guard<std::mutex> lock(failure_mutex);
  out.Set("count", failure_count.load());
  out.Set("message", last_failure);
  return out;
}

Napi::Value StartRpcServer(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
    ThrowTypeError(env, "startRpcServer(endpoint: string, nThreads: number)");
    return env.Undefined();
  }
#ifdef GGML_USE_RPC
  auto *worker = new ServerWorker(env, info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Number>().Int32Value());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
#else
  ThrowError(env, "UNSUPPORTED", "this build of llama-napi has no RPC backend");
  return env.Undefined();
#endif
}

}  // namespace llama_napi
