#include "common/speculative.h"
#include "context_internal.h"
#include "drafter.h"

namespace llama_napi {

namespace {

// A speculative run of one sequence, as llama.cpp's speculative-simple example does it: each step
// the drafter proposes tokens after the last one, one target decode verifies them all, and the
// sampler takes them in order while it samples the same token as the draft (Drafter::Verify). Every token is sampled by
// the caller's sampler from the target's logits at its true position, so the output is what plain decoding gives — the
// same tokens when greedy, the same distribution (the same tokens for a seed) when sampling — and a step yields at
// least one token. Each step's tokens reach JS in one call; the run stays at most one step ahead of what JS has
// handled, and ends at the bounds JS sets, as generateAhead's run.
class SpeculateWorker : public RunAheadWorker {
 public:
  SpeculateWorker(Context *owner, std::shared_ptr<ContextHandle> handle, std::shared_ptr<SamplerHandle> sampler,
                  GenerateRequest request, GenerateChannel channel)
      : RunAheadWorker(owner, std::move(handle), std::move(sampler), std::move(request), std::move(channel)),
        drafter_(handle_->drafter) {}

 protected:
  void Run() override {
    ExecutionScope scope(*handle_, channel_.abort);
    std::unique_ptr<ExecutionScope> draft_scope;
    if (drafter_->draft) draft_scope = std::make_unique<ExecutionScope>(*drafter_->draft, channel_.abort);
    const llama_seq_id seq = request_.seq_id;
    std::vector<llama_token> &tokens = request_.history;  // what the target's sequence holds
    llama_token last = request_.token;
    common_speculative_begin(drafter_->speculative, seq, tokens);
    int32_t generated = 0;
    std::vector<int32_t> step_ends;  // tokens posted to JS by the end of each step
    while (generated < request_.max_tokens && static_cast<llama_pos>(tokens.size()) < request_.max_position) {
      size_t step = step_ends.size();
      // This step decodes the last step's tokens: JS must have handled the step before that.
      if (step >= 2 && !channel_.JsCaughtUp(*handle_, step_ends[step - 2]) && !channel_.Stopping(*handle_)) break;
      if (channel_.stop->load()) break;
      if (channel_.Stopping(*handle_)) throw CodedError("ABORTED", "decode aborted");

      const llama_pos n_past = static_cast<llama_pos>(tokens.size());
      int32_t room = std::min(request_.max_tokens - generated, request_.max_position - n_past) - 1;
      Drafter::Proposal draft = drafter_->Propose(seq, tokens, last, room);

      BatchInput verify;
      verify.Add(last, n_past, seq, true);
      for (size_t i = 0; i < draft.tokens.size(); i++)
        verify.Add(draft.tokens[i], n_past + 1 + static_cast<llama_pos>(i), seq, true);
      RunDecode(*handle_, verify);
      steps_++;

      std::vector<llama_token> ids =
          drafter_->Verify(*handle_, sampler_->chain, seq, n_past, 0, 1, draft, [](int32_t, llama_token) {});
      const int32_t taken = static_cast<int32_t>(ids.size()) - 1;
      const bool eog = request_.stop_at_eog && llama_vocab_is_eog(handle_->model->vocab, ids.back());
      tokens.push_back(last);
      decoded_.push_back(last);
      tokens.insert(tokens.end(), draft.tokens.begin(), draft.tokens.begin() + taken);
      decoded_.insert(decoded_.end(), draft.tokens.begin(), draft.tokens.begin() + taken);
      last = ids.back();

      const int32_t drafted = static_cast<int32_t>(draft.tokens.size());
      drafted_ += drafted;
      accepted_ += taken;
      channel_.Post(generated, ids, drafted, taken);
      sampled_.insert(sampled_.end(), ids.begin(), ids.end());
      generated += static_cast<int32_t>(ids.size());
      step_ends.push_back(generated);
      if (eog) break;
    }
  }

  void Poison() override {
    PoisonContext(*handle_);
    if (drafter_->draft) PoisonContext(*drafter_->draft);
  }

 private:
  std::shared_ptr<Drafter> drafter_;
};

}  // namespace

PromiseWorker *NewSpeculateWorker(Context *owner, std::shared_ptr<ContextHandle> handle,
                                  std::shared_ptr<SamplerHandle> sampler, GenerateRequest request,
                                  GenerateChannel channel) {
  return new SpeculateWorker(owner, std::move(handle), std::move(sampler), std::move(request), std::move(channel));
}

}  // namespace llama_napi
