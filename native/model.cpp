#include "model.h"

#include <algorithm>

namespace llama_napi {

// llama.cpp stops the process (GGML_ASSERT, then abort()) on some malformed files where it should
// fail (model_load.cpp names some). The tokenizer calls below open their own AbortGuardScope on the
// main thread, and also catch what llama.cpp's tokenizer throws (a byte token missing from the
// vocabulary is a std::out_of_range that would otherwise end the process).

namespace {

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
  out.Set("addSep", llama_vocab_get_add_sep(vocab));
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
