// Progress of a native job, reported to a JavaScript callback from the job's thread (a thread-safe
// function, so reports arrive in order on the main thread). Drain waits until every report made so
// far has been delivered: a job drains at the end of Run, so its promise, which settles after Run,
// never overtakes its own reports (a fast machine otherwise settles first and loses most of them).
#pragma once

#include <napi.h>

#include <chrono>
#include <future>

namespace llama_napi {

class ProgressReporter {
 public:
  // Call from the constructor of the job, on the main thread; a non-function means no reports.
  void Start(Napi::Env env, Napi::Value callback, const char *name) {
    if (!callback.IsFunction()) return;
    tsfn_ = Napi::ThreadSafeFunction::New(env, callback.As<Napi::Function>(), name, 0, 1);
    active_ = true;
  }

  bool active() const { return active_; }

  // From the job's thread: queues `fraction` for the callback.
  void Report(double fraction) {
    if (!active_) return;
    auto *value = new double(fraction);
    auto deliver = [](Napi::Env env, Napi::Function callback, double *p) {
      if (env != nullptr && callback != nullptr) {
        callback.Call({Napi::Number::New(env, *p)});
        if (env.IsExceptionPending()) env.GetAndClearPendingException();
      }
      delete p;
    };
    if (tsfn_.NonBlockingCall(value, deliver) != napi_ok) delete value;
  }

  // From the job's thread: returns once the reports queued so far have reached JavaScript (a last
  // call queued behind them signals back; it also runs, without an environment, if the function
  // is torn down first), or after 2 s: when process.exit() ends the event loop, no call runs any
  // more, and Node joins the thread pool at exit, so an unbounded wait would hang the exit.
  void Drain() {
    if (!active_) return;
    auto *delivered = new std::promise<void>();
    std::future<void> done = delivered->get_future();
    auto signal = [](Napi::Env, Napi::Function, std::promise<void> *promise) {
      promise->set_value();
      delete promise;
    };
    if (tsfn_.BlockingCall(delivered, signal) != napi_ok) {
      delete delivered;
      return;
    }
    done.wait_for(std::chrono::seconds(2));
  }

  // On the main thread once the job settled.
  void Release() {
    if (active_) tsfn_.Release();
    active_ = false;
  }

 private:
  Napi::ThreadSafeFunction tsfn_;
  bool active_ = false;
};

}  // namespace llama_napi
