// quantize(input, output, options) -> Promise<void>: llama.cpp's model quantizer, off the event loop.
#include "quantize.h"

#include "log.h"

namespace llama_napi {

namespace {

class QuantizeWorker : public PromiseWorker {
 public:
  QuantizeWorker(Napi::Env env, std::string input, std::string output, llama_model_quantize_params params)
      : PromiseWorker(env), input_(std::move(input)), output_(std::move(output)), params_(params) {}

 protected:
  void Run() override {
    LogCapture capture;
    uint32_t status = llama_model_quantize(input_.c_str(), output_.c_str(), &params_);
    if (status != 0) {
      std::string reason = capture.Summary();
      throw CodedError("QUANTIZE_FAILED", "failed to quantize " + input_ + (reason.empty() ? "" : ": " + reason));
    }
  }

 private:
  std::string input_;
  std::string output_;
  llama_model_quantize_params params_;
};

}  // namespace

Napi::Value Quantize(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsObject()) {
    ThrowTypeError(env, "quantize(input: string, output: string, options: object)");
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
  Napi::Value output_type = options.Get("outputTensorType");
  if (output_type.IsNumber()) params.output_tensor_type = static_cast<ggml_type>(output_type.As<Napi::Number>().Int32Value());
  auto *worker = new QuantizeWorker(env, info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value(),
                                    params);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace llama_napi
