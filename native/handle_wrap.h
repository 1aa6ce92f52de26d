// The JS object of a native struct that a worker makes and that others may share (a LoRA adapter,
// a projector, a media prompt): made from the struct by the worker's Result, checked and unwrapped
// by HandleOf, let go by dispose() (whoever still shares the struct keeps it alive).
#pragma once

#include "common.h"

namespace llama_napi {

template <typename Derived, typename Handle>
class HandleWrap : public Napi::ObjectWrap<Derived>, public Releasable {
 public:
  // `made_by`: the function that makes the object, for the error of a direct construction.
  HandleWrap(const Napi::CallbackInfo &info, const char *made_by)
      : Napi::ObjectWrap<Derived>(info), Releasable(info.Env()) {
    if (info.Length() < 1 || !info[0].IsExternal()) {
      ThrowTypeError(info.Env(), std::string("cannot be constructed directly: use ") + made_by);
      return;
    }
    handle_ = *info[0].As<Napi::External<std::shared_ptr<Handle>>>().Data();
  }
  ~HandleWrap() override { handle_.reset(); }
  void ReleaseForShutdown() override { handle_.reset(); }

  // The class's dispose() method, for its Define.
  static Napi::ClassPropertyDescriptor<Derived> DisposeMethod() {
    using Method = typename Napi::ObjectWrap<Derived>::InstanceMethodCallback;
    return Napi::ObjectWrap<Derived>::InstanceMethod("dispose", static_cast<Method>(&HandleWrap::Dispose));
  }

  // A new JS object over `handle`, of the class held in `constructor`.
  static Napi::Value Wrap(Napi::Env env, Napi::FunctionReference &constructor, std::shared_ptr<Handle> handle) {
    auto *held = new std::shared_ptr<Handle>(std::move(handle));
    Napi::Value result = constructor.New({Napi::External<std::shared_ptr<Handle>>::New(env, held)});
    delete held;
    return result;
  }

  // The shared struct of a JS object of the class in `constructor`, or a thrown TypeError/DISPOSED and nullptr.
  static std::shared_ptr<Handle> HandleOf(const Napi::Value &value, const Napi::FunctionReference &constructor,
                                          const char *what) {
    Napi::Env env = value.Env();
    if (!IsInstance(value, constructor)) {
      ThrowTypeError(env, std::string("expected ") + what);
      return nullptr;
    }
    auto handle = Napi::ObjectWrap<Derived>::Unwrap(value.As<Napi::Object>())->handle_;
    if (!handle) ThrowError(env, "DISPOSED", std::string(what) + " has been disposed");
    return handle;
  }

 protected:
  // The struct, or a thrown DISPOSED error and nullptr.
  std::shared_ptr<Handle> Live(Napi::Env env, const char *what) {
    if (!handle_) ThrowError(env, "DISPOSED", std::string(what) + " has been disposed");
    return handle_;
  }
  Napi::Value Dispose(const Napi::CallbackInfo &info) {
    handle_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<Handle> handle_;
};

}  // namespace llama_napi
