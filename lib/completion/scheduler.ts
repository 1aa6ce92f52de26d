// Continuous batching: requests run as sequences of one context; every step decodes one batch
// holding the next token of each generating sequence plus prompt chunks of new ones, and samples
// all of them in the same native call.
import type { LlamaContext, SampleResult } from "../core/context.js";
import { LlamaError } from "../errors.js";
import { BatchBuilder } from "../core/batch.js";
import type { LlamaSampler } from "../core/sampler.js";
import { mustShift, shiftSequence } from "./context-shift.js";

export interface TokenLogprob {
  /** Log-probability of the chosen token. */
  logprob: number;
  /** The most likely tokens and their log-probabilities, best first. */
  top: Array<{ token: number; logprob: number }>;
}

/**
 * A request as the scheduler runs it (completion/generation.ts makes them). The job decides when it
 * stops; the scheduler asks it, feeds it tokens, and tells it when it is done with it.
 */
export interface SchedulerJob {
  readonly prompt: Int32Array;
  readonly sampler: LlamaSampler;
  /** Alternatives per token to report (undefined: no log-probabilities). */
  readonly logprobs: number | undefined;
  /** Aborts a decode of this job alone mid-way. */
  readonly signal: AbortSignal | undefined;
  /** Tokens at its sequence's start that a context shift keeps (context-shift.ts); null: it never shifts. */
  readonly shiftKeep: number | null;
  /** Takes a sampled token; false when generation ends with it. */
  accept(token: number, logprob: TokenLogprob | undefined): boolean;
  /** How many more tokens accept() takes at most: 0 once the job stopped or was aborted. */
  tokensLeft(): number;
  /**
   * Asked after each token: while the job's reader has not taken it, a promise that settles when it
   * has (it must also settle on abort); the job gets no new token before. Otherwise null.
   */
  waitForReader(): Promise<void> | null;
  /** The scheduler is done with the job: it stopped (or was aborted), or failed with `error`. */
  end(error?: unknown): void;
}

interface Slot {
  seqId: number;
  /** Tokens whose KV entries this sequence holds, in position order. */
  cached: number[];
  /** How many of `cached` a new prompt may reuse: all, until a context shift leaves the kept ones only. */
  reusable: number;
  job: SchedulerJob | null;
  /** Prompt tokens still to evaluate, from this index of job.prompt. */
  promptCursor: number;
  /** The last sampled token, not yet in the KV cache. */
  pendingToken: number | null;
  /** Until this resolves, the job's reader has not taken its last token: the slot waits. */
  paused: Promise<void> | null;
}

function commonPrefix(a: readonly number[], b: Int32Array): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** Counters of the batching loop. */
export interface SchedulerStats {
  /** Decode calls made. */
  batches: number;
  /** Tokens decoded. */
  tokens: number;
  /** The most sequences one decode call carried. */
  maxSequencesPerBatch: number;
}

export class Scheduler {
  readonly stats: SchedulerStats = { batches: 0, tokens: 0, maxSequencesPerBatch: 0 };
  readonly #context: LlamaContext;
  readonly #slots: Slot[];
  readonly #queue: SchedulerJob[] = [];
  #running = false;
  /** Ends a run ahead (a lone sequence generating natively), so that a new request can join. */
  #stopAhead: (() => void) | null = null;

  constructor(context: LlamaContext) {
    this.#context = context;
    this.#slots = Array.from({ length: context.nSeqMax }, (_, seqId) => ({
      seqId,
      cached: [],
      reusable: Infinity,
      job: null,
      promptCursor: 0,
      pendingToken: null,
      paused: null,
    }));
  }

  /** Requests waiting for a free sequence. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Tokens one sequence holds. */
  get nCtxSeq(): number {
    return this.#context.nCtxSeq;
  }

  get active(): number {
    return this.#slots.filter((s) => s.job !== null).length;
  }

  submit(job: SchedulerJob): void {
    if (job.prompt.length === 0) throw new RangeError("the prompt must hold at least one token");
    if (job.prompt.length > this.#context.nCtxSeq) {
      throw new LlamaError(
        "CONTEXT_FULL",
        `the prompt has ${job.prompt.length} tokens but the context holds ${this.#context.nCtxSeq}`,
      );
    }
    this.#queue.push(job);
    if (this.#slots.some((s) => s.job === null)) this.#stopAhead?.();
    // A job aborted while it waits leaves the queue at once rather than when a sequence frees up.
    job.signal?.addEventListener(
      "abort",
      () => {
        const at = this.#queue.indexOf(job);
        if (at < 0) return;
        this.#queue.splice(at, 1);
        job.end();
      },
      { once: true },
    );
    if (!this.#running) {
      this.#running = true;
      void this.#run();
    }
  }

  async #run(): Promise<void> {
    try {
      for (;;) {
        this.#assign();
        if (this.#slots.every((s) => s.job === null)) return;
        await this.#step();
      }
    } catch (error) {
      // A fault of the loop itself ends the jobs it holds with it rather than the process.
      for (const slot of this.#slots) {
        this.#forget(slot);
        this.#finish(slot, { error });
      }
      for (const job of this.#queue.splice(0)) job.end(error);
    } finally {
      this.#running = false;
      // A job submitted while the loop was winding down.
      if (this.#queue.length > 0 && !this.#context.disposed) {
        this.#running = true;
        void this.#run();
      }
    }
  }

  /** Gives queued jobs to free slots, preferring the slot whose cache shares most of the prompt. */
  #assign(): void {
    for (;;) {
      const job = this.#queue[0];
      if (job === undefined) return;
      const free = this.#slots.filter((s) => s.job === null);
      if (free.length === 0) return;
      this.#queue.shift();
      if (this.#context.disposed) {
        job.end(new LlamaError("DISPOSED", "the model has been disposed"));
        continue;
      }
      if (job.tokensLeft() === 0) {
        job.end();
        continue;
      }
      let best = free[0]!;
      let bestShared = -1;
      for (const slot of free) {
        if (!this.#cacheIntact(slot)) this.#forget(slot);
        const shared = Math.min(commonPrefix(slot.cached, job.prompt), slot.reusable);
        if (shared > bestShared) {
          best = slot;
          bestShared = shared;
        }
      }
      // Reuse the cached prefix, but evaluate at least the last prompt token to get its logits.
      const keep = Math.min(bestShared, job.prompt.length - 1);
      try {
        if (keep < best.cached.length && !this.#context.removeTokens(best.seqId, keep, -1)) {
          this.#context.removeTokens(best.seqId, 0, -1);
          best.cached = [];
        } else {
          best.cached.length = keep;
        }
        best.reusable = Infinity;
      } catch (err) {
        job.end(err);
        continue;
      }
      best.job = job;
      best.promptCursor = best.cached.length;
      best.pendingToken = null;
      best.paused = null;
    }
  }

  /** Frees the slot and ends its job: it stopped, or failed with `failure.error`. */
  #finish(slot: Slot, failure?: { error: unknown }): void {
    const job = slot.job;
    slot.job = null;
    slot.pendingToken = null;
    slot.paused = null;
    if (job === null) return;
    if (failure) job.end(failure.error);
    else job.end();
  }

  /**
   * Whether the slot's sequence still holds exactly the tokens the slot remembers (by position): the
   * context is public, and a clear() or a decode behind the scheduler's back must not be mistaken
   * for a cached prompt.
   */
  #cacheIntact(slot: Slot): boolean {
    if (slot.cached.length === 0) return true;
    try {
      const [first, last] = this.#context.positionRange(slot.seqId);
      return first === 0 && last === slot.cached.length - 1;
    } catch {
      return false;
    }
  }

  #forget(slot: Slot): void {
    slot.cached = [];
    slot.reusable = Infinity;
    try {
      this.#context.removeTokens(slot.seqId, 0, -1);
    } catch {
      // The context is gone; nothing to forget.
    }
  }

  async #step(): Promise<void> {
    const context = this.#context;
    // A reader that keeps up asks for its next token within this turn's promise reactions; one
    // that has not by the next turn sits this step out. Without the wait, sequences whose readers
    // ask a few reactions apart would take turns instead of sharing a batch.
    if (this.#slots.some((s) => s.job !== null && s.paused !== null)) await new Promise<void>((resume) => setImmediate(resume));
    this.#shiftFull();
    // A lone generating sequence, with no request that could join it, runs ahead natively.
    const active = this.#slots.filter((s) => s.job !== null);
    const joinable = this.#queue.length > 0 && active.length < this.#slots.length;
    const lone = active.length === 1 && !joinable ? active[0]! : null;
    if (lone !== null && lone.pendingToken !== null && lone.paused === null && lone.job!.logprobs === undefined) {
      // A job that shifts decodes below the last position only: its next shift comes before that.
      const room = context.nCtxSeq - (lone.job!.shiftKeep === null ? 0 : 1) - lone.cached.length;
      const left = Math.min(lone.job!.tokensLeft(), room);
      if (left > 0) {
        await this.#runAhead(lone, left);
        return;
      }
    }
    const batch = new BatchBuilder();
    const samples: Array<{ slot: Slot; index: number }> = [];
    // The slots in this batch and how many prompt tokens each put in (0 for a generated token).
    const inBatch = new Map<Slot, number>();
    const paused: Array<Promise<void>> = [];
    let logprobs = -1;

    for (const slot of this.#slots) {
      const job = slot.job;
      if (job === null) continue;
      if (job.tokensLeft() === 0) {
        this.#finish(slot);
        continue;
      }
      if (slot.paused !== null) {
        paused.push(slot.paused);
        continue;
      }
      if (slot.pendingToken !== null) {
        samples.push({ slot, index: batch.add(slot.pendingToken, slot.cached.length, slot.seqId, true) });
        inBatch.set(slot, 0);
      }
    }
    for (const slot of this.#slots) {
      const job = slot.job;
      if (job === null || slot.pendingToken !== null) continue;
      const room = context.nBatch - batch.length;
      if (room <= 0) break;
      const end = Math.min(job.prompt.length, slot.promptCursor + room);
      for (let i = slot.promptCursor; i < end; i++) {
        const index = batch.add(job.prompt[i]!, i, slot.seqId, i === job.prompt.length - 1);
        if (i === job.prompt.length - 1) samples.push({ slot, index });
      }
      inBatch.set(slot, end - slot.promptCursor);
    }
    if (batch.length === 0) {
      // Every generating job waits for its reader.
      if (paused.length > 0) await Promise.race(paused);
      return;
    }
    for (const { slot } of samples) {
      if (slot.job!.logprobs !== undefined) logprobs = Math.max(logprobs, slot.job!.logprobs);
    }

    this.stats.batches++;
    this.stats.tokens += batch.length;
    this.stats.maxSequencesPerBatch = Math.max(this.stats.maxSequencesPerBatch, inBatch.size);
    // A lone request may abort mid-decode; with several, the others' work must finish.
    const signal = inBatch.size === 1 ? [...inBatch.keys()][0]!.job!.signal : undefined;
    let result: SampleResult | undefined;
    try {
      if (samples.length === 0) {
        await context.decode(batch.build(), { signal });
      } else {
        result = await context.decodeAndSample(
          batch.build(),
          samples.map(({ slot, index }) => ({ sampler: slot.job!.sampler, index })),
          { signal, logprobs: logprobs >= 0 ? logprobs : undefined },
        );
      }
    } catch (err) {
      for (const slot of inBatch.keys()) {
        this.#forget(slot);
        this.#finish(slot, { error: err });
      }
      return;
    }

    // Everything decoded is now in the cache.
    for (const [slot, promptTokens] of inBatch) {
      if (slot.pendingToken !== null) {
        slot.cached.push(slot.pendingToken);
        slot.pendingToken = null;
      } else {
        for (let i = 0; i < promptTokens; i++) slot.cached.push(slot.job!.prompt[slot.promptCursor + i]!);
        slot.promptCursor += promptTokens;
      }
    }
    if (result === undefined) return;
    samples.forEach(({ slot }, i) => {
      const job = slot.job;
      if (job === null) return;
      let info: TokenLogprob | undefined;
      if (job.logprobs !== undefined && result.logprobs && result.top) {
        const top = result.top[i]!;
        info = {
          logprob: result.logprobs[i]!,
          top: Array.from(top.ids.subarray(0, job.logprobs), (id, k) => ({ token: id, logprob: top.logprobs[k]! })),
        };
      }
      const ended = this.#deliver(slot, result.tokens[i]!, info);
      if (ended !== null) this.#finish(slot, ended === "stopped" ? undefined : ended);
    });
  }

  /**
   * Shifts each sequence whose pending token would take the last position of its context, where its
   * job shifts (llama-completion shifts just before it decodes that token). One that fails ends.
   */
  #shiftFull(): void {
    for (const slot of this.#slots) {
      const keep = slot.job?.shiftKeep ?? null;
      if (keep === null || slot.pendingToken === null || slot.paused !== null || !mustShift(slot.cached.length, this.#context.nCtxSeq)) continue;
      if (slot.job!.tokensLeft() === 0) continue;
      try {
        shiftSequence(this.#context, slot.seqId, slot.cached, keep);
        slot.reusable = Math.min(slot.reusable, keep);
      } catch (error) {
        this.#forget(slot);
        this.#finish(slot, { error });
      }
    }
  }

  /**
   * Hands a sampled token to the slot's job. It becomes the slot's pending token (null), or the job
   * is to end: it stopped, or failed with the error accept() threw.
   */
  #deliver(slot: Slot, token: number, info: TokenLogprob | undefined): "stopped" | { error: unknown } | null {
    let goesOn: boolean;
    try {
      goesOn = slot.job!.accept(token, info);
    } catch (error) {
      return { error };
    }
    if (!goesOn) return "stopped";
    slot.pendingToken = token;
    const reader = slot.job!.waitForReader();
    slot.paused = reader;
    void reader?.then(() => {
      if (slot.paused === reader) slot.paused = null;
    });
    return null;
  }

  /**
   * A lone generating sequence runs ahead natively: llama.cpp decodes the next token while this
   * thread handles the last one, instead of waiting for it. It stops when its job ends or a request
   * arrives that a free sequence could take (it then joins the batch), at most one token later.
   */
  async #runAhead(slot: Slot, maxTokens: number): Promise<void> {
    const context = this.#context;
    const job = slot.job!;
    // How the job ended during the run. It is told once the run has settled, so that whoever gets
    // the result finds the context idle.
    const outcome: { ended: "stopped" | { error: unknown } | null } = { ended: null };
    const run = context.generateAhead(
      {
        token: slot.pendingToken!,
        position: slot.cached.length,
        seqId: slot.seqId,
        maxTokens,
        maxPosition: context.nCtxSeq,
        // The run pauses at an end-of-generation token; a job that goes on past it starts another.
        stopAtEog: true,
      },
      job.sampler,
      (token) => {
        // Each token sampled is one decode.
        this.stats.batches++;
        this.stats.tokens++;
        // Tokens sampled after the job ended or was aborted (at most the one in flight) go nowhere.
        if (outcome.ended !== null || job.tokensLeft() === 0) return;
        outcome.ended = this.#deliver(slot, token, undefined);
        if (outcome.ended !== null) run.stop();
        // The run goes on once the reader has taken the token.
        return slot.paused ?? undefined;
      },
      { signal: job.signal },
    );
    this.#stopAhead = run.stop;
    this.stats.maxSequencesPerBatch = Math.max(this.stats.maxSequencesPerBatch, 1);
    try {
      const { decoded } = await run.done;
      for (const token of decoded) slot.cached.push(token);
    } catch (error) {
      this.#forget(slot);
      outcome.ended ??= { error };
    } finally {
      this.#stopAhead = null;
    }
    if (outcome.ended !== null) this.#finish(slot, outcome.ended === "stopped" ? undefined : outcome.ended);
  }
}
