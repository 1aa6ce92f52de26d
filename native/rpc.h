// ggml's RPC backend: model layers on rpc-server processes, and the server itself.
#pragma once

#include "common.h"

namespace llama_napi {

// Devices of the given rpc-server endpoints ("host:port"); connecting may throw RPC_UNAVAILABLE.
// Runs on a worker thread.
std::vector<ggml_backend_dev_t> RpcDevices(const std::vector<std::string> &endpoints);

// Called from the abort guard when ggml's RPC client fails on its own dispatcher thread.
void RecordRpcFailure(const std::string &message);
bool RpcFailed();

// rpcFailures() -> { count, message }: failures of RPC connections since start.
Napi::Value RpcFailures(const Napi::CallbackInfo &info);
// startRpcServer(endpoint, nThreads) -> Promise<void> that settles only if the server stops.
Napi::Value StartRpcServer(const Napi::CallbackInfo &info);

}  // namespace llama_napi
