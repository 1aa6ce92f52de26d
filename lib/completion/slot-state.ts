// llama-server's slot files: the prompt cache of one sequence (its KV entries and the tokens they
// hold) saved to a file, restored into a sequence, or erased. The addon saves and loads the whole
// context's state, so these run while the scheduler lends its slots (no request decodes meanwhile),
// a save sets the other sequences aside in memory so that the file holds its own sequence alone,
// and a restore replaces every sequence's cache with the file's one.
import { stat } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import { BatchBuilder } from "../core/batch.js";
import type { LlamaContext } from "../core/context.js";
import { LlamaError } from "../errors.js";
import { expectInteger, expectString } from "../validate.js";
import { NO_ADAPTERS } from "./adapters.js";
import type { Scheduler } from "./scheduler.js";
import { cacheIntact, forgetCache, type Slot } from "./scheduler-job.js";

/** What a save or restore moved: the tokens of the sequence, the file's bytes, the time it took. */
export interface SlotTransfer {
  tokens: number;
  bytes: number;
  ms: number;
}

/** The sequences' prompt caches of a Llama, as llama-server's slots (Llama.slots). */
export class SlotStates {
  readonly #scheduler: Scheduler;
  readonly #context: LlamaContext;
  /** Slot operations run one at a time, in call order. */
  #tail: Promise<unknown> = Promise.resolve();

  constructor(scheduler: Scheduler, context: LlamaContext) {
    this.#scheduler = scheduler;
    this.#context = context;
  }

  /** How many slots there are (the Llama's nParallel). */
  get count(): number {
    return this.#context.info.nSeqMax;
  }

  /** Saves slot `id`'s cache to `path` (overwriting it); waits for requests in flight to finish. */
  save(id: number, path: string): Promise<SlotTransfer> {
    this.#check(id, path);
    return this.#lent(async (slots) => {
      const start = performance.now();
      const context = this.#context;
      const slot = slots[id]!;
      if (!cacheIntact(context, slot)) forgetCache(context, slot);
      const others = slots.filter((s) => s !== slot && context.positionRange(s.seqId)[1] >= 0);
      const aside = others.length > 0 ? await context.saveState() : null;
      try {
        for (const other of others) context.removeTokens(other.seqId, 0, -1);
        await context.saveStateFile(path, slot.cached);
      } finally {
        if (aside !== null) await this.#putBack(slots, aside);
      }
      return { tokens: slot.cached.length, bytes: (await stat(path)).size, ms: performance.now() - start };
    });
  }

  /**
   * Restores a file of save() into slot `id`; the other slots' caches are emptied (the context's
   * whole state is loaded). The restored entries count as decoded without LoRA adapters.
   */
  restore(id: number, path: string): Promise<SlotTransfer> {
    this.#check(id, path);
    return this.#lent(async (slots) => {
      const start = performance.now();
      const context = this.#context;
      for (const slot of slots) Object.assign(slot, { cached: [], reusable: Infinity });
      let tokens: Int32Array;
      try {
        tokens = await context.loadStateFile(path);
        const holder = this.#holderOf(tokens);
        if (holder !== null && holder !== id) await this.#move(holder, id);
      } catch (err) {
        for (const slot of slots) forgetCache(context, slot);
        throw err;
      }
      Object.assign(slots[id]!, { cached: Array.from(tokens), cachedWith: NO_ADAPTERS.key, reusable: Infinity });
      return { tokens: tokens.length, bytes: (await stat(path)).size, ms: performance.now() - start };
    });
  }

  /** Empties slot `id`'s cache; resolves to the tokens it held. */
  erase(id: number): Promise<number> {
    this.#check(id);
    return this.#lent(async (slots) => {
      const slot = slots[id]!;
      const erased = cacheIntact(this.#context, slot) ? slot.cached.length : 0;
      forgetCache(this.#context, slot);
      return erased;
    });
  }

  #check(id: number, path?: string): void {
    expectInteger("id", id, { min: 0, max: this.count - 1 });
    if (path !== undefined) expectString("path", path);
    if (this.#context.disposed) throw new LlamaError("DISPOSED", "the model has been disposed");
  }

  /** Runs `work` with the scheduler's slots once no request runs, after the operations before it. */
  #lent<T>(work: (slots: readonly Slot[]) => Promise<T>): Promise<T> {
    const run = this.#tail.then(async () => {
      const { slots, release } = await this.#scheduler.lend();
      try {
        return await work(slots);
      } finally {
        release();
      }
    });
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** Restores the state set aside by a save; if that fails, no slot keeps a cache. */
  async #putBack(slots: readonly Slot[], aside: Buffer): Promise<void> {
    try {
      await this.#context.loadState(aside);
    } catch (err) {
      for (const slot of slots) forgetCache(this.#context, slot);
      throw err;
    }
  }

  /** The sequence a loaded slot file filled (null: none, an empty slot), checked against its tokens. */
  #holderOf(tokens: Int32Array): number | null {
    const context = this.#context;
    const holders = Array.from({ length: this.count }, (_, seq) => seq).filter((seq) => context.positionRange(seq)[1] >= 0);
    const nVocab = context.model.nVocab;
    const valid =
      tokens.length <= context.nCtxSeq &&
      tokens.every((t) => t >= 0 && t < nVocab) &&
      (holders.length === 0
        ? tokens.length === 0
        : holders.length === 1 && context.positionRange(holders[0]!).join() === `0,${tokens.length - 1}`);
    if (!valid) throw new LlamaError("STATE_FAILED", "not a slot file: it does not hold one sequence's cache and its tokens");
    return holders[0] ?? null;
  }

  /**
   * Moves the cache of sequence `from` to `to`. Between sequences of separate KV streams, llama.cpp
   * copies the data at the next decode: one decode of a token in the emptied `from` makes it happen
   * now, before anything else touches the state.
   */
  async #move(from: number, to: number): Promise<void> {
    const context = this.#context;
    context.copySequence(from, to);
    context.removeTokens(from, 0, -1);
    const batch = new BatchBuilder();
    batch.add(0, 0, from, false);
    await context.decode(batch.build());
    context.removeTokens(from, 0, -1);
  }
}
