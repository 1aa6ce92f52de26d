// Chat prompts through llama.cpp's built-in template formatter, which knows a template by its name
// or by its text.
#pragma once

#include "common.h"

namespace llama_napi {

// applyChatTemplate(template, roles: string[], contents: string[], addAssistant) -> string | null
// (null when llama.cpp does not know the template)
Napi::Value ApplyChatTemplate(const Napi::CallbackInfo &info);
// builtinChatTemplates() -> string[]: the names of the templates llama.cpp knows.
Napi::Value BuiltinChatTemplates(const Napi::CallbackInfo &info);

}  // namespace llama_napi
