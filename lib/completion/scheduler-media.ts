// Prompts with media in the scheduler: a job's prompt holds a negative placeholder for each
// position of a media chunk (the same for the same file), so that a later prompt with the same
// image shares the cached prefix and is not encoded again; a chunk is decoded whole, by the
// projector (LlamaContext.evalMedia), never through a token batch, and never half reused.
import type { LlamaContext } from "../core/context.js";
import type { MediaChunk } from "../core/projector.js";
import type { SchedulerJob, SchedulerStats, Slot } from "./scheduler-job.js";

/** The media chunk that starts at prompt index `at`, if any. */
export function mediaAt(job: SchedulerJob, at: number): MediaChunk | undefined {
  return job.media?.chunks.find((chunk) => chunk.start === at);
}

/** Where the next media chunk at or after `at` starts (the prompt's end when none): a token batch stops there. */
export function nextMediaStart(job: SchedulerJob, at: number): number {
  return job.media?.chunks.find((chunk) => chunk.start >= at)?.start ?? job.prompt.length;
}

/** A cached prefix of `keep` tokens, cut back to the start of a media chunk it would end inside. */
export function mediaBoundary(job: SchedulerJob, keep: number): number {
  const inside = job.media?.chunks.find((chunk) => chunk.start < keep && keep < chunk.start + chunk.nTokens);
  return inside === undefined ? keep : inside.start;
}

/** Decodes the media chunk at the slot's prompt cursor into its sequence, and moves past it. */
export async function decodeMedia(context: LlamaContext, slot: Slot, stats: SchedulerStats): Promise<void> {
  const job = slot.job!;
  const chunk = mediaAt(job, slot.promptCursor)!;
  const started = performance.now();
  await context.evalMedia(job.media!.prompt, chunk.chunk, slot.seqId, slot.promptCursor, { signal: job.signal });
  for (let i = 0; i < chunk.nTokens; i++) slot.cached.push(job.prompt[chunk.start + i]!);
  slot.promptCursor += chunk.nTokens;
  stats.mediaChunks++;
  stats.promptTokens += chunk.nTokens;
  stats.promptMs += performance.now() - started;
}
