// OpenAI's response objects (llama-cpp-python's): completions, chat completions, their chunks and
// log-probabilities, from what a generation released.
import { randomUUID } from "node:crypto";
import type { LoadedModel } from "../core/loaded-model.js";
import type { GenerationResult, ReleasedToken } from "./generation.js";
import type { ChatLogprobs, CompletionLogprobs, CompletionUsage } from "./types.js";

/** An id of OpenAI's form and the Unix time, which every object of one response shares. */
export function responseId(prefix: "cmpl" | "chatcmpl"): { id: string; created: number } {
  return { id: `${prefix}-${randomUUID()}`, created: Math.floor(Date.now() / 1000) };
}

/** OpenAI's usage of a generation; with `drafting` (speculative decoding), its draft counts too. */
export function usage(promptTokens: number, result: GenerationResult, drafting: boolean): CompletionUsage {
  const counts = { prompt_tokens: promptTokens, completion_tokens: result.completionTokens, total_tokens: promptTokens + result.completionTokens };
  return drafting ? { ...counts, draft_tokens: result.draftTokens, draft_accepted: result.draftAccepted } : counts;
}

/** A token's text as its bytes read as UTF-8. */
function piece(model: LoadedModel, token: number): string {
  return Buffer.from(model.tokenBytes(token)).toString("utf8");
}

/** Completion logprobs of released tokens; `base`: where the generated text starts in the returned text. */
export function completionLogprobs(model: LoadedModel, entries: readonly ReleasedToken[], base: number): CompletionLogprobs {
  return {
    tokens: entries.map((e) => e.text),
    text_offset: entries.map((e) => base + e.offset),
    token_logprobs: entries.map((e) => e.logprob?.logprob ?? null),
    top_logprobs: entries.map((e) => (e.logprob ? Object.fromEntries(e.logprob.top.map((t) => [piece(model, t.token), t.logprob])) : null)),
  };
}

/** Chat logprobs of released tokens: each one's piece and bytes (or, when a stop string cut it, what was released). */
export function chatLogprobs(model: LoadedModel, entries: readonly ReleasedToken[]): ChatLogprobs {
  const bytesOf = (t: number) => Array.from(model.tokenBytes(t));
  return {
    content: entries.map((entry) => ({
      token: entry.whole ? piece(model, entry.token) : entry.text,
      logprob: entry.logprob?.logprob ?? 0,
      bytes: entry.whole ? bytesOf(entry.token) : Array.from(Buffer.from(entry.text, "utf8")),
      top_logprobs: (entry.logprob?.top ?? []).map((t) => ({ token: piece(model, t.token), logprob: t.logprob, bytes: bytesOf(t.token) })),
    })),
  };
}
