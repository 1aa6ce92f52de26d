// loadModel: reads the options, then loads the GGUF on a worker thread, with progress and abort.
#include <algorithm>
#include <bitset>
#include <cstdio>

#include "gguf.h"
#include "log.h"
#include "model.h"
#include "progress.h"
#include "rpc.h"

namespace llama_napi {

namespace {

// llama.cpp stops the process (GGML_ASSERT, then abort()) on some malformed files where it should
// fail: a block count over 512, an unknown rope scaling type, duplicate tokens, tensor data that
// cannot be mapped aligned, a vocabulary that adds a BOS token it does not have. Loads run in the
// worker's AbortGuardScope and fail through llama_model_load's own catch.

struct LoadOptions {
  std::string path;
  int32_t n_gpu_layers = 0;
  bool use_mmap = true;
  bool use_mlock = false;
  bool vocab_only = false;
  bool check_tensors = false;
  bool check_rwkv_vocabulary = false;
  int32_t main_gpu = 0;
  std::vector<std::string> rpc_servers;
  std::vector<float> tensor_split;
};

bool BoolOption(const Napi::Object &options, const char *key, bool fallback) {
  Napi::Value value = options.Get(key);
  return value.IsBoolean() ? value.As<Napi::Boolean>().Value() : fallback;
}

int32_t IntOption(const Napi::Object &options, const char *key, int32_t fallback) {
  Napi::Value value = options.Get(key);
  return value.IsNumber() ? value.As<Napi::Number>().Int32Value() : fallback;
}

// llama.cpp calls the progress callback on the loading thread; one report per percent.
struct ProgressState {
  ProgressReporter reporter;
  std::shared_ptr<std::atomic<bool>> abort;
  int last_percent = -1;
};

bool OnLoadProgress(float progress, void *user_data) {
  auto *state = static_cast<ProgressState *>(user_data);
  int percent = static_cast<int>(progress * 100.0f);
  if (percent != state->last_percent) {
    state->last_percent = percent;
    state->reporter.Report(progress);
  }
  return !(state->abort && state->abort->load());
}

// The bytes an RWKV token stands for: its text with llama.cpp's escapes (\t \n \r \xHH \<c>) undone,
// byte for byte as llama_unescape_rwkv_token does it, malformed escapes included.
std::vector<uint8_t> UnescapeRwkvToken(const std::string &escaped) {
  std::vector<uint8_t> out;
  bool escaping = false;
  uint8_t hex_remaining = 0;
  uint8_t hex_acc = 0;
  for (const char c : escaped) {
    if (hex_remaining != 0) {
      uint8_t value = (c >= 'a') ? (c - 'a' + 10) : (c - '0');
      hex_acc = (hex_acc << 4) + value;
      if (--hex_remaining == 0) {
        out.push_back(hex_acc);
        hex_acc = 0;
      }
    } else if (escaping) {
      if (c == 'x') {
        hex_remaining = 2;
      } else {
        out.push_back(c == 't' ? '\t' : c == 'n' ? '\n' : c == 'r' ? '\r' : static_cast<uint8_t>(c));
      }
      escaping = false;
    } else if (c == '\\') {
      escaping = true;
    } else {
      out.push_back(static_cast<uint8_t>(c));
    }
  }
  return out;
}

// llama.cpp's RWKV tokenizer loops forever, at load (it tokenizes "\n") and on any text, when a byte
// begins some token but has no token of its own: refuse such a vocabulary before llama.cpp sees it.
void CheckRwkvVocabulary(const std::string &path) {
  gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
  std::unique_ptr<gguf_context, decltype(&gguf_free)> gguf(gguf_init_from_file(path.c_str(), params), gguf_free);
  if (!gguf) return;  // llama.cpp's own loader reports what is wrong with the file
  int64_t tokens = gguf_find_key(gguf.get(), "tokenizer.ggml.tokens");
  if (tokens < 0 || gguf_get_kv_type(gguf.get(), tokens) != GGUF_TYPE_ARRAY ||
      gguf_get_arr_type(gguf.get(), tokens) != GGUF_TYPE_STRING) {
    return;
  }
  std::bitset<256> starts_a_token;
  std::bitset<256> is_a_token;
  for (size_t i = 0; i < gguf_get_arr_n(gguf.get(), tokens); i++) {
    std::vector<uint8_t> bytes = UnescapeRwkvToken(gguf_get_arr_str(gguf.get(), tokens, i));
    if (bytes.empty()) continue;
    starts_a_token.set(bytes[0]);
    if (bytes.size() == 1) is_a_token.set(bytes[0]);
  }
  for (int byte = 0; byte < 256; byte++) {
    if (starts_a_token[byte] && !is_a_token[byte]) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02x", byte);
      throw CodedError("MODEL_LOAD_FAILED", "failed to load model from " + path + ": RWKV vocabulary where byte " +
                                                hex +
                                                " begins tokens but has no token of its own (llama.cpp's tokenizer "
                                                "would loop forever on it)");
    }
  }
}

class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, LoadOptions options, Napi::Value on_progress, std::shared_ptr<std::atomic<bool>> abort)
      : PromiseWorker(env), options_(std::move(options)) {
    progress_.abort = std::move(abort);
    progress_.reporter.Start(env, on_progress, "llama-napi-load");
  }

  ~LoadWorker() override {
    if (model_ != nullptr) llama_model_free(model_);
  }

 protected:
  void Run() override {
    LogCapture capture;
    if (progress_.abort && progress_.abort->load()) throw CodedError("ABORTED", "model load aborted");
    if (options_.check_rwkv_vocabulary) CheckRwkvVocabulary(options_.path);
    llama_model_params params = llama_model_default_params();
    params.n_gpu_layers = options_.n_gpu_layers;
    params.main_gpu = options_.main_gpu;
    params.vocab_only = options_.vocab_only;
    params.check_tensors = options_.check_tensors;
    params.load_mode = options_.use_mmap ? (options_.use_mlock ? LLAMA_LOAD_MODE_MMAP_MLOCK : LLAMA_LOAD_MODE_MMAP)
                                         : (options_.use_mlock ? LLAMA_LOAD_MODE_MLOCK : LLAMA_LOAD_MODE_NONE);
    params.progress_callback = OnLoadProgress;
    params.progress_callback_user_data = &progress_;
    // With RPC servers the device list is explicit: their devices, then the local GPUs.
    std::vector<ggml_backend_dev_t> devices;
    if (!options_.rpc_servers.empty()) {
      devices = RpcDevices(options_.rpc_servers);
      for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t device = ggml_backend_dev_get(i);
        enum ggml_backend_dev_type type = ggml_backend_dev_type(device);
        if (type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU) devices.push_back(device);
      }
      devices.push_back(nullptr);
      params.devices = devices.data();
    }
    std::vector<float> split(llama_max_devices(), 0.0f);
    if (!options_.tensor_split.empty()) {
      if (options_.tensor_split.size() > split.size()) {
        throw CodedError("MODEL_LOAD_FAILED", "tensorSplit has more entries than llama.cpp supports devices");
      }
      std::copy(options_.tensor_split.begin(), options_.tensor_split.end(), split.begin());
      params.tensor_split = split.data();
    }
    try {
      model_ = llama_model_load_from_file(options_.path.c_str(), params);
      progress_.reporter.Drain();
    } catch (const CodedError &err) {
      progress_.reporter.Drain();
      if (err.code == "RPC_UNAVAILABLE") throw;
      throw CodedError("MODEL_LOAD_FAILED", "failed to load model from " + options_.path + ": " + err.what());
    }
    if (model_ == nullptr) {
      if (progress_.abort && progress_.abort->load()) throw CodedError("ABORTED", "model load aborted");
      std::string reason = capture.Summary();
      throw CodedError("MODEL_LOAD_FAILED",
                       "failed to load model from " + options_.path + (reason.empty() ? "" : ": " + reason));
    }
  }

  void Settled() override { progress_.reporter.Release(); }

  Napi::Value Result(Napi::Env env) override {
    auto *handle = new std::shared_ptr<ModelHandle>(std::make_shared<ModelHandle>(model_));
    model_ = nullptr;
    Napi::External<std::shared_ptr<ModelHandle>> external =
        Napi::External<std::shared_ptr<ModelHandle>>::New(env, handle);
    Napi::Value result = DataOf(env).model.New({external});
    // The constructor took a copy; an exception there leaves this one as the only owner.
    delete handle;
    return result;
  }

 private:
  LoadOptions options_;
  ProgressState progress_;
  llama_model *model_ = nullptr;
};

}  // namespace

// loadModel(path, options, onProgress?, abortFlag?) -> Promise<Model>
Napi::Value Model::Load(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsObject()) {
    ThrowTypeError(env, "loadModel(path: string, options: object, onProgress?, abortFlag?)");
    return env.Undefined();
  }
  Napi::Object options = info[1].As<Napi::Object>();
  LoadOptions load;
  load.path = info[0].As<Napi::String>().Utf8Value();
  load.n_gpu_layers = IntOption(options, "nGpuLayers", 0);
  load.main_gpu = IntOption(options, "mainGpu", 0);
  load.use_mmap = BoolOption(options, "useMmap", true);
  load.use_mlock = BoolOption(options, "useMlock", false);
  load.vocab_only = BoolOption(options, "vocabOnly", false);
  load.check_tensors = BoolOption(options, "checkTensors", false);
  load.check_rwkv_vocabulary = BoolOption(options, "checkRwkvVocabulary", false);
  Napi::Value rpc_servers = options.Get("rpcServers");
  if (rpc_servers.IsArray()) {
    Napi::Array list = rpc_servers.As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); i++) load.rpc_servers.push_back(list.Get(i).ToString().Utf8Value());
  }
  Napi::Value tensor_split = options.Get("tensorSplit");
  if (tensor_split.IsArray()) {
    Napi::Array list = tensor_split.As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); i++) load.tensor_split.push_back(list.Get(i).ToNumber().FloatValue());
  }
  Napi::Value on_progress = info.Length() > 2 ? info[2] : env.Undefined();
  auto abort = info.Length() > 3 ? AbortFlag::From(info[3]) : nullptr;
  auto *worker = new LoadWorker(env, std::move(load), on_progress, std::move(abort));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace llama_napi
