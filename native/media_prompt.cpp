// A prompt with media: Projector::Tokenize decodes each image or audio file (stb_image, miniaudio)
// and lets mtmd split the prompt at its markers into text and media chunks, on a worker thread;
// MediaPrompt holds the chunks until the context has decoded them.
#include <cstring>

#include "log.h"
#include "mtmd-helper.h"
#include "projector.h"

namespace llama_napi {

namespace {

// A media chunk's stand-in in the prompt's token array: negative (never a token), the same for
// the same file, so that a later prompt with the same image shares the cached prefix.
int32_t Placeholder(const char *id) {
  uint32_t hash = 2166136261u;
  for (const char *c = id; c != nullptr && *c != '\0'; c++) hash = (hash ^ static_cast<uint8_t>(*c)) * 16777619u;
  return -1 - static_cast<int32_t>(hash & 0x3fffffffu);
}

class TokenizeMediaWorker : public PromiseWorker {
 public:
  TokenizeMediaWorker(Napi::Env env, std::shared_ptr<ProjectorHandle> projector, std::string text,
                      std::vector<std::vector<unsigned char>> media, bool add_special, bool parse_special)
      : PromiseWorker(env),
        projector_(std::move(projector)),
        text_(std::move(text)),
        media_(std::move(media)),
        add_special_(add_special),
        parse_special_(parse_special) {}
  ~TokenizeMediaWorker() override {
    for (mtmd_bitmap *bitmap : bitmaps_) mtmd_bitmap_free(bitmap);
    if (chunks_ != nullptr) mtmd_input_chunks_free(chunks_);
  }

 protected:
  void Run() override {
    mtmd_context *mtmd = projector_->mtmd;
    LogCapture capture;
    for (size_t i = 0; i < media_.size(); i++) {
      mtmd_helper_bitmap_wrapper wrapped = mtmd_helper_bitmap_init_from_buf(mtmd, media_[i].data(), media_[i].size(),
                                                                            false, mtmd_helper_init_opt_default());
      if (wrapped.video_ctx != nullptr) mtmd_helper_video_free(wrapped.video_ctx);
      if (wrapped.bitmap == nullptr) {
        std::string reason = capture.Summary();
        throw CodedError("INVALID_MEDIA", "media[" + std::to_string(i) +
                                              "] is no image or audio file that can be read" +
                                              (reason.empty() ? "" : ": " + reason));
      }
      bitmaps_.push_back(wrapped.bitmap);
    }
    chunks_ = mtmd_input_chunks_init();
    mtmd_input_text input{text_.c_str(), text_.size(), add_special_, parse_special_};
    std::vector<const mtmd_bitmap *> bitmaps(bitmaps_.begin(), bitmaps_.end());
    int32_t status = mtmd_tokenize(mtmd, chunks_, &input, bitmaps.data(), bitmaps.size());
    if (status == 1) {
      throw CodedError("INVALID_ARGUMENT", "the prompt's media markers (" + std::string(mtmd_default_marker()) +
                                               ") do not match the " + std::to_string(media_.size()) + " media given");
    }
    if (status != 0) {
      std::string reason = capture.Summary();
      throw CodedError("INVALID_MEDIA", "the media could not be prepared" + (reason.empty() ? "" : ": " + reason));
    }
  }

  Napi::Value Result(Napi::Env env) override {
    auto *handle = new std::shared_ptr<MediaPromptHandle>(std::make_shared<MediaPromptHandle>(projector_, chunks_));
    chunks_ = nullptr;
    Napi::Value result =
        DataOf(env).media_prompt.New({Napi::External<std::shared_ptr<MediaPromptHandle>>::New(env, handle)});
    delete handle;
    return result;
  }

 private:
  std::shared_ptr<ProjectorHandle> projector_;
  std::string text_;
  std::vector<std::vector<unsigned char>> media_;
  bool add_special_;
  bool parse_special_;
  std::vector<mtmd_bitmap *> bitmaps_;
  mtmd_input_chunks *chunks_ = nullptr;
};

}  // namespace

// tokenize(text: string, media: Uint8Array[], addSpecial: boolean, parseSpecial: boolean) -> Promise<MediaPrompt>
Napi::Value Projector::Tokenize(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = Live(env, "the projector");
  if (!handle) return env.Undefined();
  if (info.Length() < 4 || !info[0].IsString() || !info[1].IsArray()) {
    ThrowTypeError(env, "tokenize(text: string, media: Uint8Array[], addSpecial: boolean, parseSpecial: boolean)");
    return env.Undefined();
  }
  Napi::Array list = info[1].As<Napi::Array>();
  std::vector<std::vector<unsigned char>> media;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value item = list.Get(i);
    if (!item.IsTypedArray() || item.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      ThrowTypeError(env, "tokenize: media[" + std::to_string(i) + "] must be a Uint8Array");
      return env.Undefined();
    }
    Napi::Uint8Array bytes = item.As<Napi::Uint8Array>();
    media.emplace_back(bytes.Data(), bytes.Data() + bytes.ElementLength());
  }
  auto *worker = new TokenizeMediaWorker(env, std::move(handle), info[0].As<Napi::String>().Utf8Value(),
                                         std::move(media), info[2].ToBoolean().Value(), info[3].ToBoolean().Value());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Function MediaPrompt::Define(Napi::Env env) {
  Napi::Function function = DefineClass(env, "MediaPrompt",
                                        {
                                            DisposeMethod(),
                                            InstanceMethod<&MediaPrompt::Layout>("layout"),
                                        });
  DataOf(env).media_prompt = Napi::Persistent(function);
  return function;
}

// layout() -> { tokens: Int32Array, media: { chunk, start, nTokens, nPos, id, audio }[] }: the text
// tokens, each media chunk's positions holding its placeholder (a negative number).
Napi::Value MediaPrompt::Layout(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto handle = Live(env, "the media prompt");
  if (!handle) return env.Undefined();
  std::vector<int32_t> tokens;
  Napi::Array media = Napi::Array::New(env);
  const mtmd_input_chunks *chunks = handle->chunks;
  for (size_t i = 0; i < mtmd_input_chunks_size(chunks); i++) {
    const mtmd_input_chunk *chunk = mtmd_input_chunks_get(chunks, i);
    if (mtmd_input_chunk_get_type(chunk) == MTMD_INPUT_CHUNK_TYPE_TEXT) {
      size_t n = 0;
      const llama_token *text = mtmd_input_chunk_get_tokens_text(chunk, &n);
      tokens.insert(tokens.end(), text, text + n);
      continue;
    }
    const char *id = mtmd_input_chunk_get_id(chunk);
    size_t n_tokens = mtmd_input_chunk_get_n_tokens(chunk);
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("chunk", static_cast<double>(i));
    entry.Set("start", static_cast<double>(tokens.size()));
    entry.Set("nTokens", static_cast<double>(n_tokens));
    entry.Set("nPos", static_cast<double>(mtmd_input_chunk_get_n_pos(chunk)));
    entry.Set("id", id == nullptr ? "" : id);
    entry.Set("audio", mtmd_input_chunk_get_type(chunk) == MTMD_INPUT_CHUNK_TYPE_AUDIO);
    media.Set(media.Length(), entry);
    tokens.insert(tokens.end(), n_tokens, Placeholder(id));
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("tokens", ToInt32Array(env, tokens));
  out.Set("media", media);
  return out;
}

}  // namespace llama_napi
