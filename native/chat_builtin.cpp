#include "chat_builtin.h"

namespace llama_napi {

Napi::Value ApplyChatTemplate(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsString() || !info[1].IsArray() || !info[2].IsArray()) {
    ThrowTypeError(env, "applyChatTemplate(template: string, roles: string[], contents: string[], addAssistant)");
    return env.Undefined();
  }
  std::string tmpl = info[0].As<Napi::String>().Utf8Value();
  Napi::Array roles_js = info[1].As<Napi::Array>();
  Napi::Array contents_js = info[2].As<Napi::Array>();
  if (roles_js.Length() != contents_js.Length()) {
    Napi::RangeError::New(env, "applyChatTemplate: one content per role").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<std::string> roles;
  std::vector<std::string> contents;
  size_t total = 0;
  for (uint32_t i = 0; i < roles_js.Length(); i++) {
    roles.push_back(roles_js.Get(i).ToString().Utf8Value());
    contents.push_back(contents_js.Get(i).ToString().Utf8Value());
    total += roles.back().size() + contents.back().size();
  }
  std::vector<llama_chat_message> messages;
  for (size_t i = 0; i < roles.size(); i++) messages.push_back({roles[i].c_str(), contents[i].c_str()});
  std::vector<char> buffer(total * 2 + 256);
  bool add_assistant = info[3].ToBoolean();
  int32_t n = llama_chat_apply_template(tmpl.c_str(), messages.data(), messages.size(), add_assistant, buffer.data(),
                                        static_cast<int32_t>(buffer.size()));
  if (n > static_cast<int32_t>(buffer.size())) {
    buffer.resize(static_cast<size_t>(n));
    n = llama_chat_apply_template(tmpl.c_str(), messages.data(), messages.size(), add_assistant, buffer.data(),
                                  static_cast<int32_t>(buffer.size()));
  }
  if (n < 0) return env.Null();
  return Napi::String::New(env, buffer.data(), static_cast<size_t>(n));
}

Napi::Value BuiltinChatTemplates(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int32_t count = llama_chat_builtin_templates(nullptr, 0);
  std::vector<const char *> names(static_cast<size_t>(count > 0 ? count : 0));
  llama_chat_builtin_templates(names.data(), names.size());
  Napi::Array out = Napi::Array::New(env, names.size());
  for (size_t i = 0; i < names.size(); i++) out[static_cast<uint32_t>(i)] = names[i];
  return out;
}

}  // namespace llama_napi
