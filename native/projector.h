// Projector: a multimodal projector (mmproj GGUF) loaded by llama.cpp's mtmd for a model, which
// turns images and audio into embeddings the model reads. projector.cpp holds the handle and its
// loading job; media_prompt.cpp a prompt tokenized with its media (MediaPrompt), and
// context_media.cpp the decode of one media chunk into a context's sequence.
#pragma once

#include <mutex>

#include "handle_wrap.h"
#include "model.h"
#include "mtmd.h"

namespace llama_napi {

struct ProjectorHandle {
  mtmd_context *mtmd = nullptr;
  // mtmd's encoder is not reentrant: contexts that share the projector encode one at a time.
  std::mutex encoding;
  // mtmd reads the text model's vocabulary and width: the model must outlive it.
  std::shared_ptr<ModelHandle> model;
  ProjectorHandle(mtmd_context *mtmd, std::shared_ptr<ModelHandle> model) : mtmd(mtmd), model(std::move(model)) {}
  ~ProjectorHandle() { mtmd_free(mtmd); }
  ProjectorHandle(const ProjectorHandle &) = delete;
  ProjectorHandle &operator=(const ProjectorHandle &) = delete;
};

class Projector : public HandleWrap<Projector, ProjectorHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Projector(const Napi::CallbackInfo &info) : HandleWrap(info, "loadProjector()") {}
  // loadProjector(model, path, { nThreads, useGpu, flashAttn }) -> Promise<Projector>
  static Napi::Value Load(const Napi::CallbackInfo &info);
  // The shared handle, or a thrown TypeError/DISPOSED error and nullptr.
  static std::shared_ptr<ProjectorHandle> HandleOf(const Napi::Value &value) {
    return HandleWrap::HandleOf(value, DataOf(value.Env()).projector, "the projector");
  }
  // After the contexts, before the models.
  int ShutdownRank() const override { return 1; }

 private:
  Napi::Value Info(const Napi::CallbackInfo &info);
  Napi::Value Tokenize(const Napi::CallbackInfo &info);
};

// A prompt split by mtmd into text and media chunks, the media already preprocessed (decoded,
// resized, cut into patches or mel frames) and waiting to be encoded into a context.
struct MediaPromptHandle {
  std::shared_ptr<ProjectorHandle> projector;
  mtmd_input_chunks *chunks = nullptr;
  MediaPromptHandle(std::shared_ptr<ProjectorHandle> projector, mtmd_input_chunks *chunks)
      : projector(std::move(projector)), chunks(chunks) {}
  ~MediaPromptHandle() { mtmd_input_chunks_free(chunks); }
  MediaPromptHandle(const MediaPromptHandle &) = delete;
  MediaPromptHandle &operator=(const MediaPromptHandle &) = delete;
};

class MediaPrompt : public HandleWrap<MediaPrompt, MediaPromptHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit MediaPrompt(const Napi::CallbackInfo &info) : HandleWrap(info, "Projector.tokenize()") {}
  // The shared handle, or a thrown TypeError/DISPOSED error and nullptr.
  static std::shared_ptr<MediaPromptHandle> HandleOf(const Napi::Value &value) {
    return HandleWrap::HandleOf(value, DataOf(value.Env()).media_prompt, "the media prompt");
  }
  // Before the projectors.
  int ShutdownRank() const override { return 0; }

 private:
  Napi::Value Layout(const Napi::CallbackInfo &info);
};

}  // namespace llama_napi
