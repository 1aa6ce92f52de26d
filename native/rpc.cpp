#include "rpc.h"

#include <mutex>

#include "ggml-rpc.h"
#include "log.h"

namespace llama_napi {

namespace {

std::mutex failure_mutex;
std::atomic<uint32_t> failure_count{0};
std::string last_failure;

using AddServerFn = ggml_backend_reg_t (*)(const char *endpoint);
using StartServerFn = void (*)(const char *endpoint, const char *cache_dir, size_t n_threads, size_t n_devices,
                               ggml_backend_dev_t *devices);

const char *const kNoRpcBackend = "this build of llama-napi has no RPC backend";

class ServerWorker : public PromiseWorker {
 public:
  ServerWorker(Napi::Env env, StartServerFn start_server, std::string endpoint, int32_t n_threads)
      : PromiseWorker(env), start_server_(start_server), endpoint_(std::move(endpoint)), n_threads_(n_threads) {}

 protected:
  void Run() override {
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (cpu == nullptr) throw CodedError("RPC_UNAVAILABLE", "no CPU device to serve");
    LogCapture capture;
    // Serves clients one after another; returns only when the socket cannot be set up.
    start_server_(endpoint_.c_str(), nullptr, static_cast<size_t>(n_threads_), 1, &cpu);
    std::string reason = capture.Summary();
    throw CodedError("RPC_UNAVAILABLE", "rpc-server could not listen on " + endpoint_ +
                                            (reason.empty() ? " (address in use or not local?)" : ": " + reason));
  }

 private:
  StartServerFn start_server_;
  std::string endpoint_;
  int32_t n_threads_;
};

}  // namespace

void RecordRpcFailure(const std::string &message) {
  std::lock_guard<std::mutex> lock(failure_mutex);
  last_failure = message;
  failure_count++;
}

bool RpcFailed() { return failure_count.load() > 0; }

std::vector<ggml_backend_dev_t> RpcDevices(const std::vector<std::string> &endpoints) {
  std::vector<ggml_backend_dev_t> devices;
  if (endpoints.empty()) return devices;
  auto add_server = BackendFunction<AddServerFn>("RPC", "ggml_backend_rpc_add_server");
  if (add_server == nullptr) throw CodedError("UNSUPPORTED", kNoRpcBackend);
  for (const std::string &endpoint : endpoints) {
    // Connects and shakes hands on this (guarded) thread: a server that is down or speaks another
    // protocol version becomes an RPC_UNAVAILABLE error here.
    LogCapture capture;
    ggml_backend_reg_t reg = nullptr;
    try {
      reg = add_server(endpoint.c_str());
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
  auto start_server = BackendFunction<StartServerFn>("RPC", "ggml_backend_rpc_start_server");
  if (start_server == nullptr) {
    ThrowError(env, "UNSUPPORTED", kNoRpcBackend);
    return env.Undefined();
  }
  auto *worker = new ServerWorker(env, start_server, info[0].As<Napi::String>().Utf8Value(),
                                  info[1].As<Napi::Number>().Int32Value());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace llama_napi
