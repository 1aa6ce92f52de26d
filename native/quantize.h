#pragma once

#include "common.h"

namespace llama_napi {

Napi::Value Quantize(const Napi::CallbackInfo &info);

}  // namespace llama_napi
