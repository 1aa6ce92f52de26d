#include "batch.h"

#include "context.h"

namespace llama_napi {

bool ReadBatch(Napi::Env env, const Napi::Value &value, const ContextHandle &handle, BatchInput &batch) {
  if (!value.IsObject()) {
    ThrowTypeError(env, "batch must be an object");
    return false;
  }
  Napi::Object object = value.As<Napi::Object>();
  auto int32_field = [&](const char *name, std::vector<int32_t> &out) {
    Napi::Value field = object.Get(name);
    if (!field.IsTypedArray() || field.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      ThrowTypeError(env, std::string("batch.") + name + " must be an Int32Array");
      return false;
    }
    out = Int32Vector(field);
    return true;
  };
  if (!int32_field("tokens", batch.tokens) || !int32_field("positions", batch.positions) ||
      !int32_field("seqIds", batch.seq_ids)) {
    return false;
  }
  Napi::Value logits = object.Get("logits");
  if (!logits.IsTypedArray() || logits.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowTypeError(env, "batch.logits must be a Uint8Array");
    return false;
  }
  Napi::Uint8Array logit_flags = logits.As<Napi::Uint8Array>();
  batch.logits.assign(logit_flags.Data(), logit_flags.Data() + logit_flags.ElementLength());
  size_t n = batch.tokens.size();
  if (n == 0) {
    Napi::RangeError::New(env, "batch is empty").ThrowAsJavaScriptException();
    return false;
  }
  if (batch.positions.size() != n || batch.seq_ids.size() != n || batch.logits.size() != n) {
    Napi::RangeError::New(env, "batch arrays must all have the same length").ThrowAsJavaScriptException();
    return false;
  }
  if (n > static_cast<size_t>(handle.batch_capacity)) {
    Napi::RangeError::New(
        env, "batch of " + std::to_string(n) + " tokens exceeds nBatch (" + std::to_string(handle.batch_capacity) + ")")
        .ThrowAsJavaScriptException();
    return false;
  }
  int32_t n_vocab = llama_vocab_n_tokens(handle.model->vocab);
  int32_t n_seq_max = static_cast<int32_t>(llama_n_seq_max(handle.ctx));
  for (size_t i = 0; i < n; i++) {
    if (batch.tokens[i] < 0 || batch.tokens[i] >= n_vocab) {
      Napi::RangeError::New(env, "batch.tokens[" + std::to_string(i) + "] = " + std::to_string(batch.tokens[i]) +
                                     " is outside the vocabulary")
          .ThrowAsJavaScriptException();
      return false;
    }
    if (batch.seq_ids[i] < 0 || batch.seq_ids[i] >= n_seq_max) {
      Napi::RangeError::New(env,
                            "batch.seqIds[" + std::to_string(i) + "] must be in 0.." + std::to_string(n_seq_max - 1))
          .ThrowAsJavaScriptException();
      return false;
    }
    if (batch.positions[i] < 0) {
      Napi::RangeError::New(env, "batch.positions[" + std::to_string(i) + "] must not be negative")
          .ThrowAsJavaScriptException();
      return false;
    }
  }
  return true;
}

void FillBatch(llama_batch &batch, const BatchInput &input) {
  batch.n_tokens = static_cast<int32_t>(input.tokens.size());
  for (int32_t i = 0; i < batch.n_tokens; i++) {
    batch.token[i] = input.tokens[i];
    batch.pos[i] = input.positions[i];
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = input.seq_ids[i];
    batch.logits[i] = input.logits[i] != 0;
  }
}

}  // namespace llama_napi
