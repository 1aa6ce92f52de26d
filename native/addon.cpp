// Module entry: process-wide backend setup, the per-environment cleanup, and the table of exports.
#include <mutex>

#include "backend.h"
#include "chat_builtin.h"
#include "chat_templates.h"
#include "common.h"
#include "common/log.h"
#include "context.h"
#include "ggml-backend.h"
#include "log.h"
#include "lora.h"
#include "model.h"
#include "projector.h"
#include "quantize.h"
#include "rpc.h"
#include "sampler.h"

namespace llama_napi {

namespace {

std::once_flag backend_once;

void InitBackendOnce() {
  std::call_once(backend_once, [] {
    InstallLogRouter();
    InstallAbortGuard();
    // llama.cpp's common library logs through a thread of its own; its errors reach JS as exceptions.
    common_log_set_verbosity_thold(-1);
#ifdef GGML_BACKEND_DL
    // The CPU variants and GPU backends are modules beside the addon; ggml picks the best CPU one.
    ggml_backend_load_all_from_path(AddonDirectory().c_str());
#endif
    llama_backend_init();
  });
}

void CleanupEnv(void *env) {
  ReleaseAllOf(static_cast<napi_env>(env));
  ReleaseLoggerOf(static_cast<napi_env>(env));
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitBackendOnce();
  env.SetInstanceData(new AddonData());
  napi_add_env_cleanup_hook(env, CleanupEnv, env);
  exports.Set("AbortFlag", AbortFlag::Define(env));
  exports.Set("Model", Model::Define(env));
  exports.Set("Context", Context::Define(env));
  exports.Set("Sampler", Sampler::Define(env));
  exports.Set("Lora", Lora::Define(env));
  exports.Set("Projector", Projector::Define(env));
  exports.Set("MediaPrompt", MediaPrompt::Define(env));
  exports.Set("ChatTemplates", ChatTemplates::Define(env));
  exports.Set("ChatParser", ChatParser::Define(env));
  exports.Set("loadModel", Napi::Function::New<Model::Load>(env, "loadModel"));
  exports.Set("createContext", Napi::Function::New<Context::Create>(env, "createContext"));
  exports.Set("loadLora", Napi::Function::New<Lora::Load>(env, "loadLora"));
  exports.Set("loadProjector", Napi::Function::New<Projector::Load>(env, "loadProjector"));
  exports.Set("quantize", Napi::Function::New<Quantize>(env, "quantize"));
  exports.Set("setLogger", Napi::Function::New<SetLogger>(env, "setLogger"));
  exports.Set("systemInfo", Napi::Function::New<SystemInfo>(env, "systemInfo"));
  exports.Set("buildInfo", Napi::Function::New<BuildInfo>(env, "buildInfo"));
  exports.Set("devices", Napi::Function::New<Devices>(env, "devices"));
  exports.Set("ftypeName", Napi::Function::New<FtypeName>(env, "ftypeName"));
  exports.Set("applyChatTemplate", Napi::Function::New<ApplyChatTemplate>(env, "applyChatTemplate"));
  exports.Set("builtinChatTemplates", Napi::Function::New<BuiltinChatTemplates>(env, "builtinChatTemplates"));
  exports.Set("rpcFailures", Napi::Function::New<RpcFailures>(env, "rpcFailures"));
  exports.Set("startRpcServer", Napi::Function::New<StartRpcServer>(env, "startRpcServer"));
  return exports;
}

}  // namespace llama_napi

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return llama_napi::Init(env, exports); }

NODE_API_MODULE(llama_napi, InitAddon)
