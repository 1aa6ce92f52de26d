#include "model.h"

#include <algorithm>
#include <bitset>
#include <cmath>
#include <mutex>

#include "gguf.h"
#include "log.h"
#include "rpc.h"

namespace llama_napi {

namespace {

// llama.cpp stops the process (GGML_ASSERT, then abort()) on some malformed files where it should
// fail: a block count over 512, an unknown rope scaling type, duplicate tokens, tensor data that
// cannot be mapped aligned, a vocabulary that adds a BOS token it does not have. Loads run in the
// worker's AbortGuardScope and fail through llama_model_load's own catch; the tokenizer calls below
// open their own scope on the main thread, and also catch what llama.cpp's tokenizer throws (a byte
// token missing from the vocabulary is a std::out_of_range that would otherwise end the process).

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

// Progress reaches JS through a thread-safe function; llama.cpp calls it on the loading thread.
struct ProgressState {
  Napi::ThreadSafeFunction tsfn;
  bool has_tsfn = false;
  std::shared_ptr<std::atomic<bool>> abort;
  int last_percent = -1;
};

bool OnLoadProgress(float progress, void *user_data) {
  auto *state = static_cast<ProgressState *>(user_data);
  if (state->has_tsfn) {
    int percent = static_cast<int>(progress * 100.0f);
    if (percent != state->last_percent) {
      state->last_percent = percent;
      auto *value = new float(progress);
      auto deliver = [](Napi::Env env, Napi::Function callback, float *p) {
        if (env != nullptr && callback != nullptr) {
          callback.Call({Napi::Number::New(env, *p)});
          if (env.IsExceptionPending()) env.GetAndClearPendingException();
        }
        delete p;
      };
      if (state->tsfn.NonBlockingCall(value, deliver) != napi_ok) delete value;
    }
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
    if (on_progress.IsFunction()) {
      progress_.tsfn = Napi::ThreadSafeFunction::New(env, on_progress.As<Napi::Function>(), "llama-napi-load", 0, 1);
      progress_.has_tsfn = true;
    }
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
    } catch (const CodedError &err) {
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

  void Settled() override {
    if (progress_.has_tsfn) progress_.tsfn.Release();
  }

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

std::string MetaString(int32_t (*read)(const llama_model *, int32_t, char *, size_t), const llama_model *model,
                       int32_t index) {
  std::vector<char> buffer(256);
  int32_t n = read(model, index, buffer.data(), buffer.size());
  if (n < 0) return std::string();
  if (static_cast<size_t>(n) >= buffer.size()) {
    buffer.resize(static_cast<size_t>(n) + 1);
    n = read(model, index, buffer.data(), buffer.size());
    if (n < 0) return std::string();
  }
  return std::string(buffer.data(), static_cast<size_t>(n));
}

}  // namespace

Napi::Function Model::Define(Napi::Env env) {
  Napi::Function function = DefineClass(env, "Model",
                                        {
                                            InstanceMethod<&Model::Dispose>("dispose"),
                                            InstanceMethod<&Model::Info>("info"),
                                            InstanceMethod<&Model::Metadata>("metadata"),
                                            InstanceMethod<&Model::Tokenize>("tokenize"),
                                            InstanceMethod<&Model::Detokenize>("detokenize"),
                                            InstanceMethod<&Model::TokenBytes>("tokenBytes"),
                                            InstanceMethod<&Model::TokenText>("tokenText"),
                                            InstanceMethod<&Model::TokenAttributes>("tokenAttributes"),
                                            InstanceMethod<&Model::IsEog>("isEog"),
                                            InstanceMethod<&Model::ChatTemplate>("chatTemplate"),
                                        });
  DataOf(env).model = Napi::Persistent(function);
  return function;
}

Model::Model(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Model>(info), Releasable(info.Env()) {
  if (info.Length() < 1 || !info[0].IsExternal()) {
    ThrowTypeError(info.Env(), "Model cannot be constructed directly: use loadModel()");
    return;
  }
  handle_ = *info[0].As<Napi::External<std::shared_ptr<ModelHandle>>>().Data();
  reported_bytes_ = static_cast<int64_t>(llama_model_size(handle_->model));
  ReportExternalMemory(info.Env(), reported_bytes_);
}

Model::~Model() { Release(); }

void Model::Release() {
  if (!handle_) return;
  handle_.reset();
  if (reported_bytes_ != 0) {
    ReportExternalMemory(Napi::Env(OwnerEnv()), -reported_bytes_);
    reported_bytes_ = 0;
  }
}

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

std::shared_ptr<ModelHandle> Model::Live(Napi::Env env) {
  if (!handle_) ThrowError(env, "DISPOSED", "the model has been disposed");
  return handle_;
}

std::shared_ptr<ModelHandle> Model::HandleOf(const Napi::Value &value) {
  Napi::Env env = value.Env();
  if (!IsInstance(value, DataOf(env).model)) {
    ThrowTypeError(env, "expected a Model");
    return nullptr;
  }
  auto handle = Unwrap(value.As<Napi::Object>())->Live(env);
  if (handle && handle->poisoned.load()) {
    ThrowError(env, "NATIVE_ERROR", "the model is unusable: llama.cpp failed while using it");
    return nullptr;
  }
  return handle;
}

Napi::Value Model::Dispose(const Napi::CallbackInfo &info) {
  Release();
  return info.Env().Undefined();
}

Napi::Value Model::Info(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = Live(env);
  if (!handle) return env.Undefined();
  const llama_model *model = handle->model;
  const llama_vocab *vocab = handle->vocab;
  Napi::Object out = Napi::Object::New(env);
  char description[256];
  llama_model_desc(model, description, sizeof(description));
  out.Set("description", description);
  out.Set("size", Napi::Number::New(env, static_cast<double>(llama_model_size(model))));
  out.Set("nParams", Napi::Number::New(env, static_cast<double>(llama_model_n_params(model))));
  out.Set("nCtxTrain", llama_model_n_ctx_train(model));
  out.Set("nEmbd", llama_model_n_embd(model));
  int32_t n_layer = llama_model_n_layer(model);
  out.Set("nLayer", n_layer);
  // llama.cpp aborts the process when asked for the head count of a model without layers
  // (a vocabulary-only load).
  out.Set("nHead", n_layer > 0 ? llama_model_n_head(model) : 0);
  out.Set("nHeadKv", n_layer > 0 ? llama_model_n_head_kv(model) : 0);
  out.Set("hasEncoder", llama_model_has_encoder(model));
  out.Set("hasDecoder", llama_model_has_decoder(model));
  out.Set("isRecurrent", llama_model_is_recurrent(model));
  out.Set("nVocab", llama_vocab_n_tokens(vocab));
  out.Set("vocabType", static_cast<int32_t>(llama_vocab_type(vocab)));
  out.Set("bos", llama_vocab_bos(vocab));
  out.Set("eos", llama_vocab_eos(vocab));
  out.Set("eot", llama_vocab_eot(vocab));
  out.Set("sep", llama_vocab_sep(vocab));
  out.Set("nl", llama_vocab_nl(vocab));
  out.Set("pad", llama_vocab_pad(vocab));
  out.Set("fimPre", llama_vocab_fim_pre(vocab));
  out.Set("fimSuf", llama_vocab_fim_suf(vocab));
  out.Set("fimMid", llama_vocab_fim_mid(vocab));
  out.Set("fimPad", llama_vocab_fim_pad(vocab));
  out.Set("fimRep", llama_vocab_fim_rep(vocab));
  out.Set("fimSep", llama_vocab_fim_sep(vocab));
  out.Set("addBos", llama_vocab_get_add_bos(vocab));
  out.Set("addEos", llama_vocab_get_add_eos(vocab));
  return out;
}

Napi::Value Model::Metadata(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = Live(env);
  if (!handle) return env.Undefined();
  Napi::Object out = Napi::Object::New(env);
  int32_t count = llama_model_meta_count(handle->model);
  for (int32_t i = 0; i < count; i++) {
    std::string key = MetaString(llama_model_meta_key_by_index, handle->model, i);
    if (key.empty()) continue;
    out.Set(key, MetaString(llama_model_meta_val_str_by_index, handle->model, i));
  }
  return out;
}

// tokenize(text, addSpecial, parseSpecial) -> Int32Array
Napi::Value Model::Tokenize(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!RequireArgs(info, 3, "tokenize")) return env.Undefined();
  if (!info[0].IsString()) {
    ThrowTypeError(env, "tokenize: text must be a string");
    return env.Undefined();
  }
  auto handle = Live(env);
  if (!handle) return env.Undefined();
  std::string text = info[0].As<Napi::String>().Utf8Value();
  bool add_special = info[1].ToBoolean();
  bool parse_special = info[2].ToBoolean();
  if (text.size() > static_cast<size_t>(INT32_MAX / 2)) {
    Napi::RangeError::New(env, "tokenize: text is too long").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int32_t capacity = static_cast<int32_t>(text.size()) + 8;
  std::vector<llama_token> tokens(static_cast<size_t>(capacity));
  int32_t n = 0;
  try {
    AbortGuardScope scope;
    n = llama_tokenize(handle->vocab, text.data(), static_cast<int32_t>(text.size()), tokens.data(), capacity,
                       add_special, parse_special);
    if (n < 0 && n != INT32_MIN) {
      tokens.resize(static_cast<size_t>(-n));
      n = llama_tokenize(handle->vocab, text.data(), static_cast<int32_t>(text.size()), tokens.data(), -n, add_special,
                         parse_special);
    }
  } catch (const std::exception &err) {
    ThrowError(env, "TOKENIZE_FAILED", std::string("tokenization failed: ") + err.what());
    return env.Undefined();
  }
  if (n < 0) {
    ThrowError(env, "TOKENIZE_FAILED", "tokenization failed");
    return env.Undefined();
  }
  // A byte no token covers comes out as LLAMA_TOKEN_NULL when the vocabulary has no unknown token.
  if (std::any_of(tokens.begin(), tokens.begin() + n, [](llama_token t) { return t < 0; })) {
    ThrowError(env, "TOKENIZE_FAILED",
               "the text has bytes that no token of this vocabulary covers, and it has no unknown token");
    return env.Undefined();
  }
  Napi::Int32Array out = Napi::Int32Array::New(env, static_cast<size_t>(n));
  std::copy(tokens.begin(), tokens.begin() + n, out.Data());
  return out;
}

// Validates an Int32Array of token ids against the vocabulary; throws RangeError otherwise.
static bool TokensInVocab(Napi::Env env, const Napi::Int32Array &tokens, const llama_vocab *vocab) {
  int32_t n_vocab = llama_vocab_n_tokens(vocab);
  for (size_t i = 0; i < tokens.ElementLength(); i++) {
    if (tokens[i] < 0 || tokens[i] >= n_vocab) {
      Napi::RangeError::New(env, "token " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                                     " is outside the vocabulary (0.." + std::to_string(n_vocab - 1) + ")")
          .ThrowAsJavaScriptException();
      return false;
    }
  }
  return true;
}

// detokenize(tokens: Int32Array, removeSpecial, unparseSpecial) -> string
Napi::Value Model::Detokenize(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!RequireArgs(info, 3, "detokenize")) return env.Undefined();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    ThrowTypeError(env, "detokenize: tokens must be an Int32Array");
    return env.Undefined();
  }
  auto handle = Live(env);
  if (!handle) return env.Undefined();
  Napi::Int32Array tokens = info[0].As<Napi::Int32Array>();
  if (!TokensInVocab(env, tokens, handle->vocab)) return env.Undefined();
  bool remove_special = info[1].ToBoolean();
  bool unparse_special = info[2].ToBoolean();
  int32_t n_tokens = static_cast<int32_t>(tokens.ElementLength());
  std::vector<char> text(static_cast<size_t>(n_tokens) * 8 + 16);
  int32_t n = 0;
  try {
    AbortGuardScope scope;
    n = llama_detokenize(handle->vocab, tokens.Data(), n_tokens, text.data(), static_cast<int32_t>(text.size()),
                         remove_special, unparse_special);
    if (n < 0) {
      text.resize(static_cast<size_t>(-n));
      n = llama_detokenize(handle->vocab, tokens.Data(), n_tokens, text.data(), -n, remove_special, unparse_special);
    }
  } catch (const std::exception &err) {
    ThrowError(env, "TOKENIZE_FAILED", std::string("detokenization failed: ") + err.what());
    return env.Undefined();
  }
  if (n < 0) {
    ThrowError(env, "TOKENIZE_FAILED", "detokenization failed");
    return env.Undefined();
  }
  return Napi::String::New(env, text.data(), static_cast<size_t>(n));
}

// tokenBytes(token, special) -> Uint8Array: the raw bytes of a token's piece, possibly a partial
// UTF-8 sequence, for streaming decoders.
Napi::Value Model::TokenBytes(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!RequireArgs(info, 2, "tokenBytes")) return env.Undefined();
  auto handle = Live(env);
  if (!handle) return env.Undefined();
  int32_t token = info[0].ToNumber().Int32Value();
  if (token < 0 || token >= llama_vocab_n_tokens(handle->vocab)) {
    Napi::RangeError::New(env, "token " + std::to_string(token) + " is outside the vocabulary")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  char buffer[256];
  std::vector<char> large;
  const char *data = buffer;
  int32_t n = 0;
  try {
    AbortGuardScope scope;
    n = llama_token_to_piece(handle->vocab, token, buffer, sizeof(buffer), 0, info[1].ToBoolean());
    if (n < 0) {
      large.resize(static_cast<size_t>(-n));
      n = llama_token_to_piece(handle->vocab, token, large.data(), -n, 0, info[1].ToBoolean());
      data = large.data();
    }
  } catch (const std::exception &err) {
    ThrowError(env, "TOKENIZE_FAILED", std::string("token to text failed: ") + err.what());
    return env.Undefined();
  }
  if (n < 0) n = 0;
  Napi::Uint8Array out = Napi::Uint8Array::New(env, static_cast<size_t>(n));
  std::copy(data, data + n, reinterpret_cast<char *>(out.Data()));
  return out;
}

Napi::Value Model::TokenText(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!RequireArgs(info, 1, "tokenText")) return env.Undefined();
  auto handle = Live(env);
  if (!handle) return env.Undefined();
  int32_t token = info[0].ToNumber().Int32Value();
  if (token < 0 || token >= llama_vocab_n_tokens(handle->vocab)) {
    Napi::RangeError::New(env, "token " + std::to_string(token) + " is outside the vocabulary")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const char *text = llama_vocab_get_text(handle->vocab, token);
  return Napi::String::New(env, text == nullptr ? "" : text);
}

Napi::Value Model::TokenAttributes(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!RequireArgs(info, 1, "tokenAttributes")) return env.Undefined();
  auto handle = Live(env);
  if (!handle) return env.Undefined();
  int32_t token = info[0].ToNumber().Int32Value();
  if (token < 0 || token >= llama_vocab_n_tokens(handle->vocab)) {
    Napi::RangeError::New(env, "token " + std::to_string(token) + " is outside the vocabulary")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(llama_vocab_get_attr(handle->vocab, token)));
}

Napi::Value Model::IsEog(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!RequireArgs(info, 1, "isEog")) return env.Undefined();
  auto handle = Live(env);
  if (!handle) return env.Undefined();
  int32_t token = info[0].ToNumber().Int32Value();
  if (token < 0 || token >= llama_vocab_n_tokens(handle->vocab)) return Napi::Boolean::New(env, false);
  return Napi::Boolean::New(env, llama_vocab_is_eog(handle->vocab, token));
}

// chatTemplate(name?) -> string | null: the model's GGUF chat template.
Napi::Value Model::ChatTemplate(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = Live(env);
  if (!handle) return env.Undefined();
  std::string name = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  const char *tmpl = llama_model_chat_template(handle->model, name.empty() ? nullptr : name.c_str());
  if (tmpl == nullptr) return env.Null();
  return Napi::String::New(env, tmpl);
}

}  // namespace llama_napi
