// ChatTemplates: a model's Jinja chat templates (or an override), rendered by llama.cpp's
// common/chat: the prompt of a conversation with tools, and the grammar, triggers and parser
// that go with it. ChatParser: the reply parsed back into content, reasoning and tool calls.
#pragma once

#include "common.h"
#include "common/chat.h"

namespace llama_napi {

class ChatTemplates : public Napi::ObjectWrap<ChatTemplates> {
 public:
  static Napi::Function Define(Napi::Env env);
  // new ChatTemplates(model, override: string, overrideName: string): the model's templates, or
  // `override` (a Jinja source) when not empty. A template that does not parse throws CHAT_TEMPLATE.
  explicit ChatTemplates(const Napi::CallbackInfo &info);

 private:
  // apply(inputs: string (JSON)) -> string (JSON): see lib/core/chat-templates.ts.
  Napi::Value Apply(const Napi::CallbackInfo &info);
  // source() -> string: the default template's Jinja source.
  Napi::Value Source(const Napi::CallbackInfo &info);
  // supportsThinking() -> boolean
  Napi::Value SupportsThinking(const Napi::CallbackInfo &info);

  common_chat_templates_ptr templates_;
};

class ChatParser : public Napi::ObjectWrap<ChatParser> {
 public:
  static Napi::Function Define(Napi::Env env);
  // new ChatParser(params: string (JSON of { format, generationPrompt, parser }))
  explicit ChatParser(const Napi::CallbackInfo &info);

 private:
  // update(delta: string, final: boolean) -> string (JSON of { message, diffs }): the reply so far
  // parsed, and what changed since the last update.
  Napi::Value Update(const Napi::CallbackInfo &info);

  common_chat_parser_params params_;
  std::string text_;
  common_chat_msg message_;
  std::vector<std::string> tool_call_ids_;
};

}  // namespace llama_napi
