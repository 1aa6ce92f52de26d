// stateGet/stateSet/stateSaveFile/stateLoadFile: llama.cpp's serialized context state, to and from a
// buffer or a file, on a worker thread.
#include <cstring>

#include "context_internal.h"
#include "log.h"

namespace llama_napi {

namespace {

// One state operation; each factory takes the inputs of its kind.
class StateWorker : public PromiseWorker {
 public:
  static StateWorker *Get(Context *owner, std::shared_ptr<ContextHandle> handle) {
    return new StateWorker(owner, std::move(handle), Kind::Get, {}, {}, {}, 0);
  }
  // Restores `state`, the bytes of an earlier stateGet.
  static StateWorker *Set(Context *owner, std::shared_ptr<ContextHandle> handle, std::vector<uint8_t> state) {
    return new StateWorker(owner, std::move(handle), Kind::Set, std::move(state), {}, {}, 0);
  }
  // Saves the state to `path` together with `tokens`, the tokens it holds.
  static StateWorker *SaveFile(Context *owner, std::shared_ptr<ContextHandle> handle, std::string path,
                               std::vector<int32_t> tokens) {
    return new StateWorker(owner, std::move(handle), Kind::SaveFile, {}, std::move(path), std::move(tokens), 0);
  }
  // Loads the state from `path`, with up to `token_capacity` of the tokens saved with it.
  static StateWorker *LoadFile(Context *owner, std::shared_ptr<ContextHandle> handle, std::string path,
                               size_t token_capacity) {
    return new StateWorker(owner, std::move(handle), Kind::LoadFile, {}, std::move(path), {}, token_capacity);
  }

 protected:
  void Run() override {
    ExecutionScope scope(*handle_, nullptr);
    LogCapture capture;
    auto fail = [&](const std::string &what) {
      std::string reason = capture.Summary();
      throw CodedError("STATE_FAILED", what + (reason.empty() ? "" : ": " + reason));
    };
    switch (kind_) {
      case Kind::Get: {
        data_.resize(llama_state_get_size(handle_->ctx));
        size_t written = llama_state_get_data(handle_->ctx, data_.data(), data_.size());
        if (written == 0) fail("could not serialize the context state");
        data_.resize(written);
        break;
      }
      case Kind::Set: {
        // llama.cpp allocates whatever length the leading architecture string claims (gigabytes for
        // a garbage buffer): check that length against the buffer first.
        uint32_t arch_length = 0;
        if (data_.size() >= sizeof(arch_length)) std::memcpy(&arch_length, data_.data(), sizeof(arch_length));
        if (data_.size() < sizeof(arch_length) || arch_length > data_.size() - sizeof(arch_length)) {
          fail("not a context state saved by llama.cpp");
        }
        if (llama_state_set_data(handle_->ctx, data_.data(), data_.size()) == 0) fail("could not restore the state");
        handle_->outputs.clear();
        break;
      }
      case Kind::SaveFile:
        if (!llama_state_save_file(handle_->ctx, path_.c_str(), tokens_.data(), tokens_.size())) {
          fail("could not save the state to " + path_);
        }
        break;
      case Kind::LoadFile: {
        tokens_.resize(token_capacity_);
        size_t count = 0;
        if (!llama_state_load_file(handle_->ctx, path_.c_str(), tokens_.data(), tokens_.size(), &count)) {
          fail("could not load the state from " + path_);
        }
        tokens_.resize(count);
        handle_->outputs.clear();
        break;
      }
    }
  }

  void Settled() override { owner_->OperationSettled(); }

  void Poison() override { PoisonContext(*handle_); }

  Napi::Value Result(Napi::Env env) override {
    if (kind_ == Kind::Get) return Napi::Buffer<uint8_t>::Copy(env, data_.data(), data_.size());
    if (kind_ == Kind::LoadFile) return ToInt32Array(env, tokens_);
    return env.Undefined();
  }

 private:
  enum class Kind { Get, Set, SaveFile, LoadFile };
  StateWorker(Context *owner, std::shared_ptr<ContextHandle> handle, Kind kind, std::vector<uint8_t> data,
              std::string path, std::vector<int32_t> tokens, size_t token_capacity)
      : PromiseWorker(owner->Value()),
        owner_(owner),
        handle_(std::move(handle)),
        kind_(kind),
        data_(std::move(data)),
        path_(std::move(path)),
        tokens_(std::move(tokens)),
        token_capacity_(token_capacity) {}

  Context *owner_;
  std::shared_ptr<ContextHandle> handle_;
  Kind kind_;
  // The state's bytes: read by Set, written by Get.
  std::vector<uint8_t> data_;
  std::string path_;
  // The tokens saved with the state: read by SaveFile, written by LoadFile.
  std::vector<int32_t> tokens_;
  size_t token_capacity_;
};

}  // namespace

// stateGet() -> Promise<Buffer>
Napi::Value Context::StateGet(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = BeginOperation(env);
  if (!handle) return env.Undefined();
  auto *worker = StateWorker::Get(this, handle);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// stateSet(state: Uint8Array) -> Promise<void>
Napi::Value Context::StateSet(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) {
    ThrowTypeError(env, "stateSet: state must be a Uint8Array or Buffer");
    return env.Undefined();
  }
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  auto handle = BeginOperation(env);
  if (!handle) return env.Undefined();
  auto *worker = StateWorker::Set(this, handle, std::vector<uint8_t>(bytes.Data(), bytes.Data() + bytes.ByteLength()));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// stateSaveFile(path, tokens: Int32Array) -> Promise<void>
Napi::Value Context::StateSaveFile(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    ThrowTypeError(env, "stateSaveFile(path: string, tokens: Int32Array)");
    return env.Undefined();
  }
  auto handle = BeginOperation(env);
  if (!handle) return env.Undefined();
  auto *worker = StateWorker::SaveFile(this, handle, info[0].As<Napi::String>().Utf8Value(), Int32Vector(info[1]));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// stateLoadFile(path) -> Promise<Int32Array> (the tokens saved with the state)
Napi::Value Context::StateLoadFile(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    ThrowTypeError(env, "stateLoadFile(path: string)");
    return env.Undefined();
  }
  auto handle = BeginOperation(env);
  if (!handle) return env.Undefined();
  auto *worker = StateWorker::LoadFile(this, handle, info[0].As<Napi::String>().Utf8Value(), llama_n_ctx(handle->ctx));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace llama_napi
