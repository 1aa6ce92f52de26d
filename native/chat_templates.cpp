#include "chat_templates.h"

#include <chrono>
#include <nlohmann/json.hpp>
#include <random>

#include "model.h"

// Rendering and parsing take well under a millisecond for a chat, so they run on the calling thread,
// as tokenize does.

namespace llama_napi {

namespace {

using json = nlohmann::ordered_json;

const char *TriggerTypeName(common_grammar_trigger_type type) {
  switch (type) {
    case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN:
      return "token";
    case COMMON_GRAMMAR_TRIGGER_TYPE_WORD:
      return "word";
    case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN:
      return "pattern";
    case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL:
      return "pattern_full";
  }
  return "word";
}

common_json ToCommon(const json &value) { return common_json::parse(value.dump()); }

// The inputs of common_chat_templates_apply from lib/core/chat-templates.ts's JSON; messages and
// tools are parsed as llama-server parses a request's (OpenAI's shapes).
common_chat_templates_inputs ReadInputs(const json &in) {
  common_chat_templates_inputs inputs;
  inputs.messages = common_chat_msgs_parse_oaicompat(ToCommon(in.at("messages")));
  if (in.contains("tools")) inputs.tools = common_chat_tools_parse_oaicompat(ToCommon(in.at("tools")));
  inputs.tool_choice = common_chat_tool_choice_parse_oaicompat(in.value("toolChoice", std::string("auto")));
  inputs.parallel_tool_calls = in.value("parallelToolCalls", false);
  inputs.json_schema = in.value("jsonSchema", std::string());
  inputs.add_generation_prompt = in.value("addGenerationPrompt", true);
  inputs.reasoning_format = common_reasoning_format_from_name(in.value("reasoningFormat", std::string("none")));
  inputs.enable_thinking = in.value("enableThinking", true);
  if (in.contains("kwargs")) {
    for (const auto &[key, value] : in.at("kwargs").items()) inputs.chat_template_kwargs[key] = value.dump();
  }
  if (in.contains("now")) {
    inputs.now = std::chrono::system_clock::time_point(std::chrono::milliseconds(in.at("now").get<int64_t>()));
  }
  return inputs;
}

json WriteParams(const common_chat_params &params) {
  json triggers = json::array();
  for (const auto &trigger : params.grammar_triggers) {
    json t = {{"type", TriggerTypeName(trigger.type)}, {"value", trigger.value}};
    if (trigger.token != LLAMA_TOKEN_NULL) t["token"] = trigger.token;
    triggers.push_back(t);
  }
  return {
      {"prompt", params.prompt},
      {"format", static_cast<int>(params.format)},
      {"formatName", common_chat_format_name(params.format)},
      {"grammar", params.grammar},
      {"grammarLazy", params.grammar_lazy},
      {"grammarTriggers", triggers},
      {"preservedTokens", params.preserved_tokens},
      {"additionalStops", params.additional_stops},
      {"generationPrompt", params.generation_prompt},
      {"parser", params.parser},
      {"supportsThinking", params.supports_thinking},
      {"thinkingStartTag", params.thinking_start_tag},
      {"thinkingEndTags", params.thinking_end_tags},
  };
}

// An OpenAI-like tool call id: the parser keeps one the model wrote, and asks for one otherwise.
std::string NewToolCallId() {
  static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  static thread_local std::mt19937 generator{std::random_device{}()};
  std::string id = "call_";
  for (int i = 0; i < 24; i++) id += alphabet[generator() % (sizeof(alphabet) - 1)];
  return id;
}

json WriteDiff(const common_chat_msg_diff &diff) {
  json out = json::object();
  if (!diff.reasoning_content_delta.empty()) out["reasoningContent"] = diff.reasoning_content_delta;
  if (!diff.content_delta.empty()) out["content"] = diff.content_delta;
  if (diff.tool_call_index != std::string::npos) {
    out["toolCall"] = {{"index", diff.tool_call_index},
                       {"id", diff.tool_call_delta.id},
                       {"name", diff.tool_call_delta.name},
                       {"arguments", diff.tool_call_delta.arguments}};
  }
  return out;
}

}  // namespace

Napi::Function ChatTemplates::Define(Napi::Env env) {
  return DefineClass(env, "ChatTemplates",
                     {
                         InstanceMethod<&ChatTemplates::Apply>("apply"),
                         InstanceMethod<&ChatTemplates::Source>("source"),
                         InstanceMethod<&ChatTemplates::SupportsThinking>("supportsThinking"),
                     });
}

ChatTemplates::ChatTemplates(const Napi::CallbackInfo &info) : Napi::ObjectWrap<ChatTemplates>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[1].IsString() || !info[2].IsString()) {
    ThrowTypeError(env, "new ChatTemplates(model: Model, override: string, overrideName: string)");
    return;
  }
  auto model = Model::HandleOf(info[0]);
  if (!model) return;
  std::string override_source = info[1].As<Napi::String>().Utf8Value();
  std::string name = info[2].As<Napi::String>().Utf8Value();
  const char *model_source = llama_model_chat_template(model->model, nullptr);
  std::string source = override_source.empty() && model_source != nullptr ? model_source : override_source;
  // common_chat_templates_init rethrows a parse error as a bare std::exception: parsing the source
  // first keeps the Jinja error's message.
  try {
    if (!source.empty()) {
      common_chat_template probe(source, "", "");
    }
    templates_ = common_chat_templates_init(model->model, override_source);
  } catch (const std::exception &e) {
    ThrowError(env, "CHAT_TEMPLATE", name + " does not parse as a Jinja template: " + e.what());
  }
}

Napi::Value ChatTemplates::Apply(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    ThrowTypeError(env, "apply(inputs: string)");
    return env.Undefined();
  }
  common_chat_templates_inputs inputs;
  try {
    inputs = ReadInputs(json::parse(info[0].As<Napi::String>().Utf8Value()));
  } catch (const std::exception &e) {
    ThrowError(env, "INVALID_ARGUMENT", e.what());
    return env.Undefined();
  }
  try {
    return Napi::String::New(env, WriteParams(common_chat_templates_apply(templates_.get(), inputs)).dump());
  } catch (const std::exception &e) {
    ThrowError(env, "CHAT_TEMPLATE", e.what());
    return env.Undefined();
  }
}

Napi::Value ChatTemplates::Source(const Napi::CallbackInfo &info) {
  return Napi::String::New(info.Env(), common_chat_templates_source(templates_.get()));
}

// It renders a probe: a template that fails to is taken not to think (its real render will say why).
Napi::Value ChatTemplates::SupportsThinking(const Napi::CallbackInfo &info) {
  try {
    return Napi::Boolean::New(info.Env(), common_chat_templates_support_enable_thinking(templates_.get()));
  } catch (const std::exception &) {
    return Napi::Boolean::New(info.Env(), false);
  }
}

Napi::Function ChatParser::Define(Napi::Env env) {
  return DefineClass(env, "ChatParser", {InstanceMethod<&ChatParser::Update>("update")});
}

ChatParser::ChatParser(const Napi::CallbackInfo &info) : Napi::ObjectWrap<ChatParser>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    ThrowTypeError(env, "new ChatParser(params: string)");
    return;
  }
  try {
    json in = json::parse(info[0].As<Napi::String>().Utf8Value());
    params_.format = static_cast<common_chat_format>(in.at("format").get<int>());
    params_.generation_prompt = in.value("generationPrompt", std::string());
    std::string parser = in.value("parser", std::string());
    if (!parser.empty()) params_.parser.load(parser);
  } catch (const std::exception &e) {
    ThrowError(env, "INVALID_ARGUMENT", std::string("chat parser: ") + e.what());
  }
}

Napi::Value ChatParser::Update(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString()) {
    ThrowTypeError(env, "update(delta: string, final: boolean)");
    return env.Undefined();
  }
  text_ += info[0].As<Napi::String>().Utf8Value();
  bool final = info[1].ToBoolean();
  json out = {{"diffs", json::array()}};
  try {
    common_chat_msg parsed = common_chat_parse(text_, !final, params_);
    if (!parsed.empty() || final) {
      parsed.set_tool_call_ids(tool_call_ids_, NewToolCallId);
      for (const auto &diff : common_chat_msg_diff::compute_diffs(message_, parsed))
        out["diffs"].push_back(WriteDiff(diff));
      message_ = parsed;
    }
    out["ok"] = true;
  } catch (const std::exception &e) {
    // Text that does not parse (yet): a partial one waits for more; the caller decides for a final one.
    out["ok"] = false;
    out["error"] = e.what();
  }
  out["message"] = json::parse(message_.to_json_oaicompat().dump());
  return Napi::String::New(env, out.dump());
}

}  // namespace llama_napi
