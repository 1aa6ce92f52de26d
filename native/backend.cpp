#include "backend.h"

#include <dlfcn.h>

#include "ggml-backend.h"

namespace llama_napi {

namespace {

// The CPU backend in use: in a portable build, the libggml-cpu-<variant> module that ggml scored
// best for this CPU among those beside the addon; otherwise the one compiled into the addon.
void SetCpuBackendInfo(Napi::Env env, Napi::Object out) {
  ggml_backend_reg_t cpu = ggml_backend_reg_by_name("CPU");
  auto get_features = BackendFunction<ggml_backend_get_features_t>("CPU", "ggml_backend_get_features");
  Napi::Array features = Napi::Array::New(env);
  for (ggml_backend_feature *f = get_features ? get_features(cpu) : nullptr; f != nullptr && f->name != nullptr; f++) {
    std::string value = f->value == nullptr ? "" : f->value;
    features[features.Length()] = value == "1" ? std::string(f->name) : std::string(f->name) + "=" + value;
  }
  out.Set("cpuFeatures", features);
  Dl_info where{};
  std::string path;
  if (get_features != nullptr && dladdr(reinterpret_cast<void *>(get_features), &where) != 0 && where.dli_fname) {
    path = where.dli_fname;
  }
  out.Set("cpuBackendPath", path);
  std::string file = path.substr(path.find_last_of('/') + 1);
  const std::string module_prefix = "libggml-cpu-";
  if (file.rfind(module_prefix, 0) == 0) {
    out.Set("cpuVariant", file.substr(module_prefix.size(), file.rfind(".so") - module_prefix.size()));
  } else {
#ifdef LLAMA_NAPI_PORTABLE
    out.Set("cpuVariant", "baseline");
#else
    out.Set("cpuVariant", "native");
#endif
  }
}

}  // namespace

std::string AddonDirectory() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void *>(&AddonDirectory), &info) == 0 || info.dli_fname == nullptr) return ".";
  std::string path = info.dli_fname;
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

Napi::Value SystemInfo(const Napi::CallbackInfo &info) {
  return Napi::String::New(info.Env(), llama_print_system_info());
}

Napi::Value BuildInfo(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("llamaCommit", LLAMA_NAPI_LLAMA_COMMIT);
  out.Set("compiler", LLAMA_NAPI_COMPILER);
  out.Set("addonPath", AddonDirectory());
#ifdef LLAMA_NAPI_PORTABLE
  out.Set("portable", true);
#else
  out.Set("portable", false);
#endif
#ifdef LLAMA_NAPI_AMX_DISABLED
  out.Set("amxDisabled", true);
#else
  out.Set("amxDisabled", false);
#endif
  out.Set("supportsMmap", llama_supports_mmap());
  out.Set("supportsMlock", llama_supports_mlock());
  out.Set("supportsGpuOffload", llama_supports_gpu_offload());
  out.Set("supportsRpc", llama_supports_rpc());
  out.Set("maxDevices", Napi::Number::New(env, static_cast<double>(llama_max_devices())));
  out.Set("maxParallelSequences", Napi::Number::New(env, static_cast<double>(llama_max_parallel_sequences())));
  Napi::Array backends = Napi::Array::New(env);
  for (size_t i = 0; i < ggml_backend_reg_count(); i++) {
    backends[static_cast<uint32_t>(i)] = ggml_backend_reg_name(ggml_backend_reg_get(i));
  }
  out.Set("backends", backends);
  SetCpuBackendInfo(env, out);
  return out;
}

Napi::Value Devices(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
    ggml_backend_dev_t device = ggml_backend_dev_get(i);
    size_t free_bytes = 0;
    size_t total_bytes = 0;
    ggml_backend_dev_memory(device, &free_bytes, &total_bytes);
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("name", ggml_backend_dev_name(device));
    entry.Set("description", ggml_backend_dev_description(device));
    switch (ggml_backend_dev_type(device)) {
      case GGML_BACKEND_DEVICE_TYPE_CPU:
        entry.Set("type", "cpu");
        break;
      case GGML_BACKEND_DEVICE_TYPE_GPU:
        entry.Set("type", "gpu");
        break;
      case GGML_BACKEND_DEVICE_TYPE_IGPU:
        entry.Set("type", "igpu");
        break;
      default:
        entry.Set("type", "accel");
        break;
    }
    entry.Set("memoryFree", Napi::Number::New(env, static_cast<double>(free_bytes)));
    entry.Set("memoryTotal", Napi::Number::New(env, static_cast<double>(total_bytes)));
    out[static_cast<uint32_t>(i)] = entry;
  }
  return out;
}

Napi::Value FtypeName(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    ThrowTypeError(env, "ftypeName(ftype: number)");
    return env.Undefined();
  }
  return Napi::String::New(env, llama_ftype_name(static_cast<llama_ftype>(info[0].As<Napi::Number>().Int32Value())));
}

}  // namespace llama_napi
