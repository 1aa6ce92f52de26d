// quantize(input, output, options, onProgress?, abort?) -> Promise<void>: llama.cpp's model
// quantizer off the event loop, with an importance matrix, metadata overrides, per-tensor progress
// and abort between tensors.
#include "quantize.h"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <utility>

#include "log.h"
#include "progress.h"

namespace llama_napi {

namespace {

// llama_model_quantize has neither a progress callback nor an abort check. It logs one line per
// tensor ("[  12/ 201] blk.0.attn_q.weight ..."), so a log tap chained in front of the addon's log
// router reads progress from those lines on the quantizing thread, and stops the work there by
// throwing: that line is logged from llama-quant.cpp's tensor loop (C++ frames only, no worker
// threads running), and llama_model_quantize catches std::exception and returns failure.
struct QuantizeAborted : std::runtime_error {
  QuantizeAborted() : std::runtime_error("aborted") {}
};

class QuantizeJob;
thread_local QuantizeJob *active_job = nullptr;
ggml_log_callback chained_log = nullptr;
void *chained_log_data = nullptr;
std::once_flag tap_once;

class QuantizeJob {
 public:
  std::shared_ptr<std::atomic<bool>> abort;
  ProgressReporter progress;

  bool AbortRequested() const { return abort && abort->load(); }

  void Observe(const char *text) {
    int index = 0;
    int total = 0;
    if (text[0] != '[' || std::sscanf(text, "[%d/%d]", &index, &total) != 2 || total <= 0) return;
    // The line announces tensor `index`: the ones before it are done.
    progress.Report(static_cast<double>(index - 1) / total);
    if (AbortRequested()) throw QuantizeAborted();
  }
};

void QuantizeLogTap(ggml_log_level level, const char *text, void * /*user_data*/) {
  if (chained_log != nullptr) chained_log(level, text, chained_log_data);
  if (active_job != nullptr && text != nullptr) active_job->Observe(text);
}

void InstallQuantizeLogTap() {
  std::call_once(tap_once, [] {
    llama_log_get(&chained_log, &chained_log_data);
    llama_log_set(QuantizeLogTap, nullptr);
  });
}

struct ImatrixEntry {
  std::string name;
  std::vector<float> values;
};

class QuantizeWorker : public PromiseWorker {
 public:
  QuantizeWorker(Napi::Env env, std::string input, std::string output, llama_model_quantize_params params,
                 std::vector<ImatrixEntry> imatrix, std::vector<llama_model_kv_override> overrides,
                 Napi::Value on_progress, std::shared_ptr<std::atomic<bool>> abort)
      : PromiseWorker(env),
        input_(std::move(input)),
        output_(std::move(output)),
        params_(params),
        imatrix_(std::move(imatrix)),
        overrides_(std::move(overrides)) {
    job_.abort = std::move(abort);
    job_.progress.Start(env, on_progress, "llama-napi-quantize");
  }

 protected:
  void Run() override {
    LogCapture capture;
    if (job_.AbortRequested()) throw CodedError("ABORTED", "quantization aborted");
    std::vector<llama_model_imatrix_data> imatrix;
    if (!imatrix_.empty()) {
      for (const ImatrixEntry &entry : imatrix_)
        imatrix.push_back({entry.name.c_str(), entry.values.data(), entry.values.size()});
      imatrix.push_back({nullptr, nullptr, 0});
      params_.imatrix = imatrix.data();
    }
    if (!overrides_.empty()) {
      overrides_.emplace_back();
      overrides_.back().key[0] = '\0';
      params_.kv_overrides = overrides_.data();
    }
    active_job = &job_;
    uint32_t status = llama_model_quantize(input_.c_str(), output_.c_str(), &params_);
    active_job = nullptr;
    job_.progress.Drain();
    if (status != 0) {
      if (job_.AbortRequested()) {
        std::remove(output_.c_str());
        throw CodedError("ABORTED", "quantization aborted");
      }
      std::string reason = capture.Summary();
      throw CodedError("QUANTIZE_FAILED", "failed to quantize " + input_ + (reason.empty() ? "" : ": " + reason));
    }
  }

  void Settled() override { job_.progress.Release(); }

 private:
  std::string input_;
  std::string output_;
  llama_model_quantize_params params_;
  std::vector<ImatrixEntry> imatrix_;
  std::vector<llama_model_kv_override> overrides_;
  QuantizeJob job_;
};

// options.imatrix: { names: string[], values: Float32Array[] }, copied for the worker thread.
bool ReadImatrix(Napi::Env env, const Napi::Value &value, std::vector<ImatrixEntry> &out) {
  if (value.IsUndefined() || value.IsNull()) return true;
  if (!value.IsObject()) {
    ThrowTypeError(env, "quantize: options.imatrix must be { names, values }");
    return false;
  }
  Napi::Object imatrix = value.As<Napi::Object>();
  Napi::Value names = imatrix.Get("names");
  Napi::Value values = imatrix.Get("values");
  if (!names.IsArray() || !values.IsArray() || names.As<Napi::Array>().Length() != values.As<Napi::Array>().Length()) {
    ThrowTypeError(env, "quantize: options.imatrix.names and .values must be arrays of the same length");
    return false;
  }
  Napi::Array name_array = names.As<Napi::Array>();
  Napi::Array value_array = values.As<Napi::Array>();
  for (uint32_t i = 0; i < name_array.Length(); i++) {
    Napi::Value name = name_array.Get(i);
    Napi::Value data = value_array.Get(i);
    if (!name.IsString() || !data.IsTypedArray() ||
        data.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      ThrowTypeError(env, "quantize: each imatrix entry needs a name and a Float32Array");
      return false;
    }
    Napi::Float32Array floats = data.As<Napi::Float32Array>();
    out.push_back({name.As<Napi::String>().Utf8Value(),
                   std::vector<float>(floats.Data(), floats.Data() + floats.ElementLength())});
  }
  return true;
}

// options.metadata: { keys: string[], values: (string | integer)[] }, written into the output's GGUF.
bool ReadOverrides(Napi::Env env, const Napi::Value &value, std::vector<llama_model_kv_override> &out) {
  if (value.IsUndefined() || value.IsNull()) return true;
  Napi::Object metadata = value.As<Napi::Object>();
  Napi::Value keys = metadata.Get("keys");
  Napi::Value values = metadata.Get("values");
  if (!keys.IsArray() || !values.IsArray() || keys.As<Napi::Array>().Length() != values.As<Napi::Array>().Length()) {
    ThrowTypeError(env, "quantize: options.metadata.keys and .values must be arrays of the same length");
    return false;
  }
  Napi::Array key_array = keys.As<Napi::Array>();
  Napi::Array value_array = values.As<Napi::Array>();
  for (uint32_t i = 0; i < key_array.Length(); i++) {
    llama_model_kv_override kv{};
    std::string key = key_array.Get(i).ToString().Utf8Value();
    if (key.empty() || key.size() >= sizeof(kv.key)) {
      ThrowTypeError(env, "quantize: metadata keys must have 1 to 127 bytes");
      return false;
    }
    std::memcpy(kv.key, key.c_str(), key.size() + 1);
    Napi::Value entry = value_array.Get(i);
    if (entry.IsNumber()) {
      kv.tag = LLAMA_KV_OVERRIDE_TYPE_INT;
      kv.val_i64 = entry.As<Napi::Number>().Int64Value();
    } else {
      // Strings are cut to 127 bytes, as llama-quantize does.
      std::string text = entry.ToString().Utf8Value().substr(0, sizeof(kv.val_str) - 1);
      kv.tag = LLAMA_KV_OVERRIDE_TYPE_STR;
      std::memcpy(kv.val_str, text.c_str(), text.size() + 1);
    }
    out.push_back(kv);
  }
  return true;
}

}  // namespace

Napi::Value Quantize(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsObject()) {
    ThrowTypeError(env, "quantize(input: string, output: string, options: object, onProgress?, abort?)");
    return env.Undefined();
  }
  Napi::Object options = info[2].As<Napi::Object>();
  llama_model_quantize_params params = llama_model_quantize_default_params();
  Napi::Value ftype = options.Get("ftype");
  if (!ftype.IsNumber()) {
    ThrowTypeError(env, "quantize: options.ftype must be a number");
    return env.Undefined();
  }
  params.ftype = static_cast<llama_ftype>(ftype.As<Napi::Number>().Int32Value());
  Napi::Value threads = options.Get("nThreads");
  if (threads.IsNumber()) params.nthread = threads.As<Napi::Number>().Int32Value();
  Napi::Value allow_requantize = options.Get("allowRequantize");
  if (allow_requantize.IsBoolean()) params.allow_requantize = allow_requantize.As<Napi::Boolean>();
  Napi::Value leave_output = options.Get("leaveOutputTensor");
  if (leave_output.IsBoolean()) params.quantize_output_tensor = !leave_output.As<Napi::Boolean>().Value();
  Napi::Value pure = options.Get("pure");
  if (pure.IsBoolean()) params.pure = pure.As<Napi::Boolean>();
  Napi::Value only_copy = options.Get("onlyCopy");
  if (only_copy.IsBoolean()) params.only_copy = only_copy.As<Napi::Boolean>();
  Napi::Value output_type = options.Get("outputTensorType");
  if (output_type.IsNumber())
    params.output_tensor_type = static_cast<ggml_type>(output_type.As<Napi::Number>().Int32Value());
  Napi::Value embedding_type = options.Get("tokenEmbeddingType");
  if (embedding_type.IsNumber()) {
    params.token_embedding_type = static_cast<ggml_type>(embedding_type.As<Napi::Number>().Int32Value());
  }
  std::vector<ImatrixEntry> imatrix;
  if (!ReadImatrix(env, options.Get("imatrix"), imatrix)) return env.Undefined();
  std::vector<llama_model_kv_override> overrides;
  if (!ReadOverrides(env, options.Get("metadata"), overrides)) return env.Undefined();

  Napi::Value on_progress = info.Length() > 3 ? info[3] : env.Undefined();
  auto abort = info.Length() > 4 ? AbortFlag::From(info[4]) : nullptr;
  InstallQuantizeLogTap();
  auto *worker = new QuantizeWorker(env, info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value(),
                                    params, std::move(imatrix), std::move(overrides), on_progress, std::move(abort));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace llama_napi
