#include "sampler.h"

#include <cctype>

#include "common/common.h"
#include "common/reasoning-budget.h"
#include "context.h"
#include "log.h"

namespace llama_napi {

namespace {

// The parameters of lib/core/sampling.ts, which names and defaults each one and always sends it;
// the values here are neutral (that step left out) and apply only to a parameter not sent.
struct SamplerOptions {
  double temperature = 1.0;
  int32_t top_k = 0;
  double top_p = 1.0;
  double min_p = 0.0;
  double typical_p = 1.0;
  int32_t repeat_last_n = 0;
  double repeat_penalty = 1.0;
  double frequency_penalty = 0.0;
  double presence_penalty = 0.0;
  int32_t mirostat = 0;
  double mirostat_tau = 5.0;
  double mirostat_eta = 0.1;
  uint32_t seed = LLAMA_DEFAULT_SEED;
  std::vector<llama_logit_bias> logit_bias;
  std::string grammar;
  std::string grammar_root = "root";
  // A lazy grammar: free text until a trigger, then the grammar (see ReadTriggers).
  bool grammar_lazy = false;
  std::vector<std::string> trigger_patterns;
  std::vector<llama_token> trigger_tokens;
  // Text the prompt already ends with, which the grammar's output starts with.
  std::string grammar_prefill;
  // The reasoning budget: thinking between these tags ends after this many tokens (-1: never).
  int32_t reasoning_budget = -1;
  std::string reasoning_start;
  std::vector<std::string> reasoning_end;
  std::string reasoning_prefill;
};

void ReadNumber(const Napi::Object &options, const char *key, double &target) {
  Napi::Value value = options.Get(key);
  if (value.IsNumber()) target = value.As<Napi::Number>().DoubleValue();
}

void ReadInt(const Napi::Object &options, const char *key, int32_t &target) {
  Napi::Value value = options.Get(key);
  if (value.IsNumber()) target = value.As<Napi::Number>().Int32Value();
}

void ReadString(const Napi::Object &options, const char *key, std::string &target) {
  Napi::Value value = options.Get(key);
  if (value.IsString()) target = value.As<Napi::String>().Utf8Value();
}

// A lazy grammar's triggers, as common/sampling.cpp turns them into llama.cpp's: a word is a literal
// (one token when it tokenizes to one, as llama-server does), a pattern a regex searched for, a
// full pattern one that must match all the text so far, a token its id.
void ReadTriggers(const Napi::Array &triggers, const llama_vocab *vocab, SamplerOptions &o) {
  for (uint32_t i = 0; i < triggers.Length(); i++) {
    if (!triggers.Get(i).IsObject()) continue;
    Napi::Object trigger = triggers.Get(i).As<Napi::Object>();
    std::string type;
    std::string value;
    ReadString(trigger, "type", type);
    ReadString(trigger, "value", value);
    if (type == "token" && trigger.Get("token").IsNumber()) {
      o.trigger_tokens.push_back(trigger.Get("token").As<Napi::Number>().Int32Value());
    } else if (type == "word") {
      std::vector<llama_token> tokens = common_tokenize(vocab, value, false, true);
      if (tokens.size() == 1) {
        o.trigger_tokens.push_back(tokens[0]);
      } else {
        o.trigger_patterns.push_back(regex_escape(value));
      }
    } else if (type == "pattern") {
      o.trigger_patterns.push_back(value);
    } else if (type == "pattern_full") {
      o.trigger_patterns.push_back((value.empty() || value.front() != '^' ? "^" : "") + value +
                                   (value.empty() || value.back() != '$' ? "$" : ""));
    } else {
      continue;
    }
    o.grammar_lazy = true;
  }
}

// llama.cpp's reasoning budget (common/reasoning-budget): once thinking has taken its budget of
// tokens, the end tag is forced. A prompt that ends by opening thinking (DeepSeek R1's) starts it
// counting; the tag is compared as text, since its tokens in the prompt may differ from its own.
llama_sampler *ReasoningBudget(const SamplerOptions &o, const llama_vocab *vocab) {
  if (o.reasoning_budget < 0 || o.reasoning_start.empty() || o.reasoning_end.empty()) return nullptr;
  std::vector<llama_tokens> ends;
  for (const auto &tag : o.reasoning_end) ends.push_back(common_tokenize(vocab, tag, false, true));
  std::string tail = o.reasoning_prefill;
  while (!tail.empty() && std::isspace(static_cast<unsigned char>(tail.back()))) tail.pop_back();
  const std::string &start = o.reasoning_start;
  bool open = tail.size() >= start.size() && tail.compare(tail.size() - start.size(), start.size(), start) == 0;
  return common_reasoning_budget_init(vocab, {common_tokenize(vocab, start, false, true)}, ends, ends[0],
                                      o.reasoning_budget, open ? REASONING_BUDGET_COUNTING : REASONING_BUDGET_IDLE);
}

// Feeds the grammar the prompt's last text (llama-server's generation prompt), which its output
// starts with; a leading space some tokenizers add before a special token is left out.
void PrefillGrammar(llama_sampler *grammar, const llama_vocab *vocab, const std::string &prefill) {
  std::vector<llama_token> tokens = common_tokenize(vocab, prefill, false, true);
  size_t first = 0;
  if (!tokens.empty() && !std::isspace(static_cast<unsigned char>(prefill[0]))) {
    std::string piece = common_token_to_piece(vocab, tokens[0], true);
    if (!piece.empty() && std::isspace(static_cast<unsigned char>(piece[0]))) first = 1;
  }
  for (size_t i = first; i < tokens.size(); i++) llama_sampler_accept(grammar, tokens[i]);
}

// Reads the options object of lib/core/sampling.ts's resolveSampling; throws and returns false when
// the logit biases are malformed.
bool ReadSamplerOptions(Napi::Env env, const Napi::Object &options, const llama_vocab *vocab, SamplerOptions &o) {
  int32_t n_vocab = llama_vocab_n_tokens(vocab);
  ReadNumber(options, "temperature", o.temperature);
  ReadInt(options, "topK", o.top_k);
  ReadNumber(options, "topP", o.top_p);
  ReadNumber(options, "minP", o.min_p);
  ReadNumber(options, "typicalP", o.typical_p);
  ReadInt(options, "repeatLastN", o.repeat_last_n);
  ReadNumber(options, "repeatPenalty", o.repeat_penalty);
  ReadNumber(options, "frequencyPenalty", o.frequency_penalty);
  ReadNumber(options, "presencePenalty", o.presence_penalty);
  Napi::Value mirostat = options.Get("mirostat");
  if (mirostat.IsObject()) {
    ReadInt(mirostat.As<Napi::Object>(), "mode", o.mirostat);
    ReadNumber(mirostat.As<Napi::Object>(), "tau", o.mirostat_tau);
    ReadNumber(mirostat.As<Napi::Object>(), "eta", o.mirostat_eta);
  }
  Napi::Value seed = options.Get("seed");
  if (seed.IsNumber()) o.seed = seed.As<Napi::Number>().Uint32Value();
  ReadString(options, "grammar", o.grammar);
  ReadString(options, "grammarRoot", o.grammar_root);
  ReadString(options, "grammarPrefill", o.grammar_prefill);
  ReadInt(options, "reasoningBudget", o.reasoning_budget);
  Napi::Value tags = options.Get("reasoningTags");
  if (tags.IsObject()) {
    Napi::Object t = tags.As<Napi::Object>();
    ReadString(t, "start", o.reasoning_start);
    ReadString(t, "prefill", o.reasoning_prefill);
    Napi::Value end = t.Get("end");
    if (end.IsArray()) {
      for (uint32_t i = 0; i < end.As<Napi::Array>().Length(); i++) {
        Napi::Value tag = end.As<Napi::Array>().Get(i);
        if (tag.IsString() && !tag.As<Napi::String>().Utf8Value().empty())
          o.reasoning_end.push_back(tag.As<Napi::String>().Utf8Value());
      }
    }
  }
  Napi::Value triggers = options.Get("grammarTriggers");
  if (triggers.IsArray()) ReadTriggers(triggers.As<Napi::Array>(), vocab, o);
  Napi::Value bias = options.Get("logitBias");
  if (!bias.IsObject()) return true;
  Napi::Value bias_tokens = bias.As<Napi::Object>().Get("tokens");
  Napi::Value bias_values = bias.As<Napi::Object>().Get("values");
  if (!bias_tokens.IsTypedArray() || bias_tokens.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
      !bias_values.IsTypedArray() || bias_values.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    ThrowTypeError(env, "logitBias must be { tokens: Int32Array, values: Float32Array }");
    return false;
  }
  Napi::Int32Array tokens = bias_tokens.As<Napi::Int32Array>();
  Napi::Float32Array values = bias_values.As<Napi::Float32Array>();
  if (tokens.ElementLength() != values.ElementLength()) {
    Napi::RangeError::New(env, "logitBias: one value per token").ThrowAsJavaScriptException();
    return false;
  }
  for (size_t i = 0; i < tokens.ElementLength(); i++) {
    if (tokens[i] < 0 || tokens[i] >= n_vocab) {
      Napi::RangeError::New(env, "logitBias: token " + std::to_string(tokens[i]) + " is outside the vocabulary")
          .ThrowAsJavaScriptException();
      return false;
    }
    o.logit_bias.push_back({tokens[i], values[i]});
  }
  return true;
}

// The chain follows llama.cpp's common sampling order: bias, penalties, grammar, truncation,
// temperature, then the final pick (greedy, mirostat or seeded distribution).
llama_sampler *BuildChain(const SamplerOptions &o, const llama_vocab *vocab, std::string &error) {
  llama_sampler_chain_params params = llama_sampler_chain_default_params();
  llama_sampler *chain = llama_sampler_chain_init(params);
  int32_t n_vocab = llama_vocab_n_tokens(vocab);
  if (!o.logit_bias.empty()) {
    llama_sampler_chain_add(
        chain, llama_sampler_init_logit_bias(n_vocab, static_cast<int32_t>(o.logit_bias.size()), o.logit_bias.data()));
  }
  if (o.repeat_penalty != 1.0 || o.frequency_penalty != 0.0 || o.presence_penalty != 0.0) {
    llama_sampler_chain_add(
        chain,
        llama_sampler_init_penalties(n_vocab, o.repeat_last_n, static_cast<float>(o.repeat_penalty),
                                     static_cast<float>(o.frequency_penalty), static_cast<float>(o.presence_penalty)));
  }
  if (llama_sampler *budget = ReasoningBudget(o, vocab)) llama_sampler_chain_add(chain, budget);
  if (!o.grammar.empty()) {
    LogCapture capture;
    std::vector<const char *> patterns;
    for (const auto &pattern : o.trigger_patterns) patterns.push_back(pattern.c_str());
    llama_sampler *grammar =
        o.grammar_lazy ? llama_sampler_init_grammar_lazy_patterns(vocab, o.grammar.c_str(), o.grammar_root.c_str(),
                                                                  patterns.data(), patterns.size(),
                                                                  o.trigger_tokens.data(), o.trigger_tokens.size())
                       : llama_sampler_init_grammar(vocab, o.grammar.c_str(), o.grammar_root.c_str());
    if (grammar == nullptr) {
      llama_sampler_free(chain);
      std::string reason = capture.Summary();
      error = "invalid GBNF grammar" + (reason.empty() ? "" : ": " + reason);
      return nullptr;
    }
    if (!o.grammar_lazy && !o.grammar_prefill.empty()) {
      try {
        PrefillGrammar(grammar, vocab, o.grammar_prefill);
      } catch (const std::exception &e) {
        llama_sampler_free(grammar);
        llama_sampler_free(chain);
        error = std::string("the grammar does not accept its prefill: ") + e.what();
        return nullptr;
      }
    }
    llama_sampler_chain_add(chain, grammar);
  }
  if (o.temperature <= 0.0) {
    llama_sampler_chain_add(chain, llama_sampler_init_greedy());
    return chain;
  }
  if (o.mirostat == 1) {
    llama_sampler_chain_add(chain, llama_sampler_init_temp(static_cast<float>(o.temperature)));
    llama_sampler_chain_add(chain, llama_sampler_init_mirostat(n_vocab, o.seed, static_cast<float>(o.mirostat_tau),
                                                               static_cast<float>(o.mirostat_eta), 100));
    return chain;
  }
  if (o.mirostat == 2) {
    llama_sampler_chain_add(chain, llama_sampler_init_temp(static_cast<float>(o.temperature)));
    llama_sampler_chain_add(chain, llama_sampler_init_mirostat_v2(o.seed, static_cast<float>(o.mirostat_tau),
                                                                  static_cast<float>(o.mirostat_eta)));
    return chain;
  }
  if (o.top_k > 0) llama_sampler_chain_add(chain, llama_sampler_init_top_k(o.top_k));
  if (o.typical_p < 1.0) llama_sampler_chain_add(chain, llama_sampler_init_typical(static_cast<float>(o.typical_p), 1));
  if (o.top_p < 1.0) llama_sampler_chain_add(chain, llama_sampler_init_top_p(static_cast<float>(o.top_p), 1));
  if (o.min_p > 0.0) llama_sampler_chain_add(chain, llama_sampler_init_min_p(static_cast<float>(o.min_p), 1));
  llama_sampler_chain_add(chain, llama_sampler_init_temp(static_cast<float>(o.temperature)));
  llama_sampler_chain_add(chain, llama_sampler_init_dist(o.seed));
  return chain;
}

}  // namespace

Napi::Function Sampler::Define(Napi::Env env) {
  Napi::Function function = DefineClass(env, "Sampler",
                                        {
                                            InstanceMethod<&Sampler::Sample>("sample"),
                                            InstanceMethod<&Sampler::Accept>("accept"),
                                            InstanceMethod<&Sampler::Reset>("reset"),
                                            InstanceMethod<&Sampler::Dispose>("dispose"),
                                            InstanceMethod<&Sampler::Describe>("describe"),
                                        });
  DataOf(env).sampler = Napi::Persistent(function);
  return function;
}

Sampler::Sampler(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Sampler>(info), Releasable(info.Env()) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsObject()) {
    ThrowTypeError(env, "new Sampler(model: Model, options: object)");
    return;
  }
  auto model = Model::HandleOf(info[0]);
  if (!model) return;
  SamplerOptions o;
  if (!ReadSamplerOptions(env, info[1].As<Napi::Object>(), model->vocab, o)) return;
  std::string error;
  llama_sampler *chain = BuildChain(o, model->vocab, error);
  if (chain == nullptr) {
    ThrowError(env, "INVALID_GRAMMAR", error);
    return;
  }
  handle_ = std::make_shared<SamplerHandle>(chain, model);
}

std::shared_ptr<SamplerHandle> Sampler::HandleOf(const Napi::Value &value) {
  Napi::Env env = value.Env();
  if (!IsInstance(value, DataOf(env).sampler)) {
    ThrowTypeError(env, "expected a Sampler");
    return nullptr;
  }
  Sampler *sampler = Unwrap(value.As<Napi::Object>());
  if (!sampler->handle_) {
    ThrowError(env, "DISPOSED", "the sampler has been disposed");
    return nullptr;
  }
  if (sampler->handle_->in_use.load() > 0) {
    ThrowError(env, "BUSY", "the sampler is in use by a decode in flight");
    return nullptr;
  }
  return sampler->handle_;
}

// sample(context, index) -> token: samples (and accepts) from the logits of a batch index.
Napi::Value Sampler::Sample(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!RequireArgs(info, 2, "sample")) return env.Undefined();
  auto handle = HandleOf(Value());
  if (!handle) return env.Undefined();
  if (!IsInstance(info[0], DataOf(env).context)) {
    ThrowTypeError(env, "sample: expected a Context");
    return env.Undefined();
  }
  Context *context = Napi::ObjectWrap<Context>::Unwrap(info[0].As<Napi::Object>());
  auto context_handle = context->IdleHandle(env);
  if (!context_handle) return env.Undefined();
  if (context_handle->model->model != handle->model->model) {
    ThrowTypeError(env, "sample: the context belongs to another model");
    return env.Undefined();
  }
  int32_t index = info[1].ToNumber().Int32Value();
  if (index < 0 || static_cast<size_t>(index) >= context_handle->outputs.size() || !context_handle->outputs[index]) {
    Napi::RangeError::New(env, "sample: batch index " + std::to_string(index) + " has no logits from the last decode")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, llama_sampler_sample(handle->chain, context_handle->ctx, index));
}

Napi::Value Sampler::Accept(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!RequireArgs(info, 1, "accept")) return env.Undefined();
  auto handle = HandleOf(Value());
  if (!handle) return env.Undefined();
  int32_t token = info[0].ToNumber().Int32Value();
  if (token < 0 || token >= llama_vocab_n_tokens(handle->model->vocab)) {
    Napi::RangeError::New(env, "accept: token " + std::to_string(token) + " is outside the vocabulary")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  llama_sampler_accept(handle->chain, token);
  return env.Undefined();
}

Napi::Value Sampler::Reset(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = HandleOf(Value());
  if (!handle) return env.Undefined();
  llama_sampler_reset(handle->chain);
  return env.Undefined();
}

Napi::Value Sampler::Dispose(const Napi::CallbackInfo &info) {
  // A worker still sampling keeps its own reference; the chain is freed after it.
  handle_.reset();
  return info.Env().Undefined();
}

// describe() -> string[]: the names of the samplers in the chain, in order.
Napi::Value Sampler::Describe(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!handle_) {
    ThrowError(env, "DISPOSED", "the sampler has been disposed");
    return env.Undefined();
  }
  int n = llama_sampler_chain_n(handle_->chain);
  Napi::Array out = Napi::Array::New(env, static_cast<size_t>(n));
  for (int i = 0; i < n; i++)
    out[static_cast<uint32_t>(i)] = llama_sampler_name(llama_sampler_chain_get(handle_->chain, i));
  return out;
}

}  // namespace llama_napi
