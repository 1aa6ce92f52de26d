// Continuous batching: requests run as sequences of one context; every step decodes one batch
// holding the next token of each generating sequence plus prompt chunks of new ones, and samples
// all of them in the same native call.
import type { LlamaContext, SampleResult } from "../core/context.js";
import { LlamaError } from "../errors.js";
import { BatchBuilder } from "../core/batch.js";
import { NO_ADAPTERS, type AdapterSet } from "./adapters.js";
import { mustShift, shiftSequence } from "./context-shift.js";
import { decodeMedia, mediaAt, mediaBoundary, nextMediaStart } from "./scheduler-media.js";
import { cacheIntact, commonPrefix, holdsMedia, draftRequest, emptyStats, forgetCache, freeSlot, logprobAt, type SchedulerJob, type SchedulerStats, type Slot, type TokenLogprob } from "./scheduler-job.js";

export type { SchedulerJob, SchedulerStats, TokenLogprob } from "./scheduler-job.js";
export { emptyStats } from "./scheduler-job.js";

export class Scheduler {
  readonly #stats = emptyStats();
  readonly #context: LlamaContext;
  readonly #slots: Slot[];
  readonly #queue: SchedulerJob[] = [];
  #running = false;
  /** Ends a run ahead (a lone sequence generating natively), so that a new request can join. */
  #stopAhead: (() => void) | null = null;
  /** The key of the adapters the context applies now. */
  #applied = NO_ADAPTERS.key;
  /** While the slots are lent (lend()), jobs wait in the queue; resolves the lender once no job runs. */
  #lent: { idle: () => void } | null = null;

  constructor(context: LlamaContext) {
    this.#context = context;
    this.#slots = Array.from({ length: context.nSeqMax }, (_, seqId) => freeSlot(seqId));
  }

  /** The loop's counters, and the tokens the sequences hold now. */
  get stats(): SchedulerStats {
    return { ...this.#stats, cachedTokens: this.#slots.reduce((n, slot) => n + slot.cached.length, 0) };
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
    if (job.prompt.length > this.#context.nCtxSeq) throw new LlamaError("CONTEXT_FULL", `the prompt has ${job.prompt.length} tokens but the context holds ${this.#context.nCtxSeq}`);
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
    this.#wake();
  }

  #wake(): void {
    if (this.#running || this.#queue.length === 0) return;
    this.#running = true;
    void this.#run();
  }

  /**
   * The slots, once no job holds one, for work on the context's whole state (slot-state.ts); queued
   * and new jobs wait until `release` is called. One lender at a time.
   */
  async lend(): Promise<{ slots: readonly Slot[]; release: () => void }> {
    if (this.#lent !== null) throw new Error("the slots are lent already");
    const idle = new Promise<void>((resolve) => (this.#lent = { idle: resolve }));
    if (!this.#running) this.#lent!.idle();
    await idle;
    const release = () => {
      this.#lent = null;
      // Jobs queued meanwhile run now (or end with DISPOSED).
      this.#wake();
    };
    return { slots: this.#slots, release };
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
      // A job submitted while the loop was winding down, unless the slots are lent.
      if (this.#lent !== null) this.#lent.idle();
      else if (!this.#context.disposed) this.#wake();
    }
  }

  /** Gives queued jobs to free slots, preferring the slot whose cache shares most of the prompt. */
  #assign(): void {
    while (this.#lent === null) {
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
        if (!cacheIntact(this.#context, slot)) this.#forget(slot);
        // KV entries decoded with other adapters hold other values.
        const shared = slot.cachedWith === job.adapters.key ? Math.min(commonPrefix(slot.cached, job.prompt), slot.reusable) : 0;
        if (shared > bestShared) {
          best = slot;
          bestShared = shared;
        }
      }
      // Reuse the cached prefix, but evaluate at least the last prompt token to get its logits.
      const keep = mediaBoundary(job, Math.min(bestShared, job.prompt.length - 1));
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
      this.#stats.promptCachedTokens += best.cached.length;
      best.cachedWith = job.adapters.key;
      best.waited = 0;
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
    this.#stats.predictedTokens += job.generated;
    if (slot.generatingSince !== null) this.#stats.predictedMs += performance.now() - slot.generatingSince;
    slot.generatingSince = null;
    if (failure) job.end(failure.error);
    else job.end();
  }

  #forget(slot: Slot): void {
    forgetCache(this.#context, slot);
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
        if (await this.#apply(lone.job!.adapters, [lone])) await this.#runAhead(lone, left);
        return;
      }
    }
    // One batch decodes with one set of adapters: the set of the request that has waited longest.
    const adapters = this.#adaptersOfStep();
    if (await this.#decodeMedia(adapters)) return;
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
      if (job.adapters.key !== adapters.key) {
        slot.waited++;
        continue;
      }
      if (slot.pendingToken !== null) {
        samples.push({ slot, index: batch.add(slot.pendingToken, slot.cached.length, slot.seqId, true) });
        inBatch.set(slot, 0);
      }
    }
    for (const slot of this.#slots) {
      const job = slot.job;
      if (job === null || slot.pendingToken !== null || job.adapters.key !== adapters.key || job.tokensLeft() === 0) continue;
      const room = context.nBatch - batch.length;
      if (room <= 0) break;
      const end = Math.min(nextMediaStart(job, slot.promptCursor), slot.promptCursor + room);
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
    if (!(await this.#apply(adapters, [...inBatch.keys()]))) return;
    for (const slot of inBatch.keys()) slot.waited = 0;

    this.#stats.batches++;
    this.#stats.tokens += batch.length;
    this.#stats.maxSequencesPerBatch = Math.max(this.#stats.maxSequencesPerBatch, inBatch.size);
    // A lone request may abort mid-decode; with several, the others' work must finish.
    const signal = inBatch.size === 1 ? [...inBatch.keys()][0]!.job!.signal : undefined;
    let result: SampleResult | undefined;
    const started = performance.now();
    try {
      if (samples.length === 0) {
        await context.decode(batch.build(), { signal });
      } else {
        result = await context.decodeAndSample(
          batch.build(),
          samples.map(({ slot, index }) => ({ sampler: slot.job!.sampler, index, draft: this.#context.drafting ? draftRequest(slot, this.#context.nCtxSeq) : undefined })),
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

    const prompted = [...inBatch.values()].reduce((n, count) => n + count, 0);
    this.#stats.promptTokens += prompted;
    if (prompted > 0) this.#stats.promptMs += performance.now() - started;
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
    // With drafts a sample yields several tokens: the drafted ones it took (now in the KV cache
    // after its token) and one more.
    let at = 0;
    samples.forEach(({ slot }, i) => {
      const count = result.counts?.[i] ?? 1;
      const first = at;
      at += count;
      const job = slot.job;
      if (job === null) return;
      if (result.drafted !== undefined) {
        for (let k = first; k < first + count - 1; k++) slot.cached.push(result.tokens[k]!);
        if (result.drafted[i]! > 0) job.countDraft(result.drafted[i]!, result.accepted![i]!);
      }
      for (let k = first; k < first + count; k++) {
        const ended = this.#deliver(slot, result.tokens[k]!, logprobAt(result, k, job.logprobs));
        if (ended !== null) {
          this.#finish(slot, ended === "stopped" ? undefined : ended);
          return;
        }
      }
    });
  }

  /** Decodes the media chunk a prompting slot (with this step's adapters) has reached; true when there was one. */
  async #decodeMedia(adapters: AdapterSet): Promise<boolean> {
    const slot = this.#slots.find((s) => s.job !== null && s.pendingToken === null && s.job.adapters.key === adapters.key && mediaAt(s.job, s.promptCursor));
    if (slot === undefined || !(await this.#apply(adapters, [slot]))) return slot !== undefined;
    try {
      await decodeMedia(this.#context, slot, this.#stats);
    } catch (error) {
      this.#forget(slot);
      this.#finish(slot, { error });
    }
    return true;
  }

  /**
   * The adapters of this step's batch: those of the request with work that has sat out the most
   * steps, the ones applied now on a tie. Requests with other adapters wait for a later step.
   */
  #adaptersOfStep(): AdapterSet {
    let chosen: Slot | null = null;
    for (const slot of this.#slots) {
      if (slot.job === null || slot.paused !== null) continue;
      if (chosen === null || slot.waited > chosen.waited || (slot.waited === chosen.waited && slot.job.adapters.key === this.#applied)) chosen = slot;
    }
    return chosen?.job!.adapters ?? NO_ADAPTERS;
  }

  /** Makes the context apply `adapters`; on failure, ends the slots' jobs with the error and returns false. */
  async #apply(adapters: AdapterSet, slots: Slot[]): Promise<boolean> {
    if (adapters.key === this.#applied) return true;
    try {
      await this.#context.setLoras(adapters.entries);
      this.#applied = adapters.key;
      return true;
    } catch (error) {
      for (const slot of slots) this.#finish(slot, { error });
      return false;
    }
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
    slot.generatingSince ??= performance.now();
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
        // With a drafter the run speculates, drafting from what the sequence holds.
        history: context.drafting && !holdsMedia(slot) ? Int32Array.from(slot.cached) : undefined,
      },
      job.sampler,
      (token) => {
        this.#stats.tokens++;
        // Tokens sampled after the job ended or was aborted (at most the step in flight) go nowhere.
        if (outcome.ended !== null || job.tokensLeft() === 0) return;
        outcome.ended = this.#deliver(slot, token, undefined);
        if (outcome.ended !== null) run.stop();
        // The run goes on once the reader has taken the token.
        return slot.paused ?? undefined;
      },
      { signal: job.signal },
    );
    this.#stopAhead = run.stop;
    this.#stats.maxSequencesPerBatch = Math.max(this.#stats.maxSequencesPerBatch, 1);
    try {
      const { decoded, drafted, accepted, steps } = await run.done;
      this.#stats.batches += steps;
      for (const token of decoded) slot.cached.push(token);
      if (drafted > 0) job.countDraft(drafted, accepted);
    } catch (error) {
      this.#forget(slot);
      outcome.ended ??= { error };
    } finally {
      this.#stopAhead = null;
    }
    if (outcome.ended !== null) this.#finish(slot, outcome.ended === "stopped" ? undefined : outcome.ended);
  }
}
