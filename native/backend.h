// What the addon tells about itself and the machine: how it was built, the CPU backend and the
// devices ggml found, llama.cpp's system line, the names of file types.
#pragma once

#include "common.h"

namespace llama_napi {

// The folder the addon was loaded from (where a portable build keeps its ggml modules).
std::string AddonDirectory();

// systemInfo() -> string: llama.cpp's one-line summary of its backends and their features.
Napi::Value SystemInfo(const Napi::CallbackInfo &info);
// buildInfo() -> { llamaCommit, compiler, portable, backends, cpuVariant, ... } (NativeBuildInfo)
Napi::Value BuildInfo(const Napi::CallbackInfo &info);
// devices() -> [{ name, description, type, memoryFree, memoryTotal }]
Napi::Value Devices(const Napi::CallbackInfo &info);
// ftypeName(ftype) -> string: llama.cpp's name of a model file type.
Napi::Value FtypeName(const Napi::CallbackInfo &info);

}  // namespace llama_napi
