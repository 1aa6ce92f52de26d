// llama.cpp's log, routed to a JS callback (silent by default), and captured per thread so that a
// failed load or decode can say why.
#pragma once

#include <napi.h>

#include <string>

namespace llama_napi {

void InstallLogRouter();
// setLogger(callback | null, minLevel): callback(level: number, text: string) on the main thread.
Napi::Value SetLogger(const Napi::CallbackInfo &info);
void ReleaseLoggerOf(napi_env env);

// While alive, warnings and errors logged on this thread are collected, to explain failures.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture &) = delete;
  LogCapture &operator=(const LogCapture &) = delete;
  // The collected error lines (warnings too when there were no errors), joined by "; ".
  std::string Summary() const;
  void Append(int level, const char *text);

 private:
  std::string errors_;
  std::string warnings_;
  LogCapture *previous_;
};

}  // namespace llama_napi
