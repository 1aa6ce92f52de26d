#include "log.h"

#include <memory>
#include <mutex>

#include "llama.h"
#include "mtmd-helper.h"

namespace llama_napi {

namespace {

struct LogMessage {
  int level;
  std::string text;
};

struct JsLogger {
  napi_env env;
  Napi::ThreadSafeFunction tsfn;
  int min_level;
};

std::mutex logger_mutex;
std::unique_ptr<JsLogger> js_logger;
thread_local LogCapture *current_capture = nullptr;
thread_local int last_routed_level = GGML_LOG_LEVEL_INFO;

void DeliverToJs(Napi::Env env, Napi::Function callback, LogMessage *message) {
  if (env != nullptr && callback != nullptr) {
    callback.Call({Napi::Number::New(env, message->level), Napi::String::New(env, message->text)});
    // A throwing logger must not take the addon down: drop its exception.
    if (env.IsExceptionPending()) env.GetAndClearPendingException();
  }
  delete message;
}

void RouteLog(ggml_log_level level, const char *text, void * /*user_data*/) {
  if (text == nullptr) return;
  int effective = level == GGML_LOG_LEVEL_CONT ? last_routed_level : level;
  last_routed_level = effective;
  if (current_capture != nullptr) current_capture->Append(effective, text);
  std::lock_guard<std::mutex> lock(logger_mutex);
  if (!js_logger || effective < js_logger->min_level) return;
  auto *message = new LogMessage{effective, text};
  if (js_logger->tsfn.NonBlockingCall(message, DeliverToJs) != napi_ok) delete message;
}

}  // namespace

void InstallLogRouter() {
  llama_log_set(RouteLog, nullptr);
  // mtmd and its image encoder log on their own, to stderr unless told.
  mtmd_helper_log_set(RouteLog, nullptr);
}

Napi::Value SetLogger(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::lock_guard<std::mutex> lock(logger_mutex);
  if (js_logger) {
    js_logger->tsfn.Release();
    js_logger.reset();
  }
  if (info.Length() < 1 || !info[0].IsFunction()) return env.Undefined();
  int min_level = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
  auto tsfn = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "llama-napi-log", 0, 1);
  // The logger must not keep the process alive.
  tsfn.Unref(env);
  js_logger = std::make_unique<JsLogger>(JsLogger{env, tsfn, min_level});
  return env.Undefined();
}

void ReleaseLoggerOf(napi_env env) {
  std::lock_guard<std::mutex> lock(logger_mutex);
  if (js_logger && js_logger->env == env) {
    js_logger->tsfn.Release();
    js_logger.reset();
  }
}

LogCapture::LogCapture() : previous_(current_capture) { current_capture = this; }

LogCapture::~LogCapture() { current_capture = previous_; }

void LogCapture::Append(int level, const char *text) {
  std::string *target = level >= GGML_LOG_LEVEL_ERROR ? &errors_ : level == GGML_LOG_LEVEL_WARN ? &warnings_ : nullptr;
  if (target == nullptr) return;
  // Keep the capture bounded: a malformed file can make llama.cpp log a lot.
  if (target->size() < 4096) target->append(text);
}

std::string LogCapture::Summary() const {
  std::string source = errors_.empty() ? warnings_ : errors_;
  std::string out;
  bool pending_separator = false;
  for (char c : source) {
    if (c == '\n') {
      pending_separator = true;
      continue;
    }
    if (pending_separator && !out.empty()) out += "; ";
    pending_separator = false;
    out += c;
  }
  return out;
}

}  // namespace llama_napi
