// A generation as a pulled stream, as a Python generator: it starts when first read, goes on only
// while its reader asks for more, and stops when the reader breaks off, aborts, or drops it.
import type { GenerationResult, ReleasedToken } from "./generation.js";

/** Channels whose reader waits in next(). */
const awaitedChannels = new Set<Channel<unknown>>();

/**
 * A channel from the scheduler's callbacks to an async iterator. It is pulled, as a Python
 * generator: generation starts when the consumer first asks and goes on only while it asks for more
 * (see `demand`), so that a consumer that stops reading wastes at most the token in flight.
 */
class Channel<T> implements AsyncIterableIterator<T> {
  #items: T[] = [];
  #error: unknown = undefined;
  #closed = false;
  #wake: (() => void) | null = null;
  #demand: { promise: Promise<void>; resolve: () => void } | null = null;
  #start: (() => void) | null;
  readonly #onReturn: () => void;

  /** `start`: called on the first `next()`; `onReturn`: the consumer stopped reading before the end. */
  constructor(start: () => void, onReturn: () => void) {
    this.#start = start;
    this.#onReturn = onReturn;
  }

  push(item: T): void {
    this.#items.push(item);
    this.#wake?.();
  }

  close(error?: unknown): void {
    this.#closed = true;
    this.#error = error;
    this.#wake?.();
    this.#satisfy();
  }

  /**
   * Null when the consumer waits for an item; otherwise a promise that resolves once it has taken
   * every item and asks for the next one, or has returned.
   */
  demand(): Promise<void> | null {
    if (this.#closed || (this.#items.length === 0 && this.#wake !== null)) return null;
    if (this.#demand === null) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#demand = { promise, resolve };
    }
    return this.#demand.promise;
  }

  #satisfy(): void {
    this.#demand?.resolve();
    this.#demand = null;
  }

  async next(): Promise<IteratorResult<T>> {
    const start = this.#start;
    this.#start = null;
    start?.();
    for (;;) {
      const item = this.#items.shift();
      if (item !== undefined) return { value: item, done: false };
      if (this.#closed) {
        if (this.#error !== undefined) {
          const error = this.#error;
          this.#error = undefined;
          throw error;
        }
        return { value: undefined, done: true };
      }
      const wait = new Promise<void>((resolve) => (this.#wake = resolve));
      this.#satisfy();
      // Only this channel holds a reader suspended here: hold the channel meanwhile, or the GC
      // would take both as a stream dropped unfinished.
      awaitedChannels.add(this);
      try {
        await wait;
      } finally {
        awaitedChannels.delete(this);
      }
      this.#wake = null;
    }
  }

  async return(): Promise<IteratorResult<T>> {
    this.#start = null;
    if (!this.#closed) this.#onReturn();
    this.#closed = true;
    this.#items = [];
    this.#satisfy();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}

/** Stops the generation of a stream whose reader dropped it unfinished. */
const abandonedStreams = new FinalizationRegistry<AbortController>((stop) => stop.abort());

/** What a streamed generation gets from its stream. */
export interface StreamHooks {
  /** Aborts on the caller's signal, a break, or a stream dropped unfinished. */
  signal: AbortSignal;
  /** While the reader has not taken the last chunk: a promise that settles when it has, or on abort. */
  waitForReader(): Promise<void> | null;
  onDelta(text: string, released: ReleasedToken[]): void;
}

export interface StreamChunks<T> {
  /** Chunks before any text. */
  intro: T[];
  /** The chunk of a release of text; undefined: none (yet). */
  delta: (text: string, released: ReleasedToken[]) => T | undefined;
  /** The last chunks. */
  finish: (result: GenerationResult) => T[];
}

/**
 * The generation `run` starts as a pulled stream of chunks: `intro` first, then a `delta` chunk per release of
 * text, then the `finish` chunks. Breaking out of it or aborting `signal` stops generation.
 * `release` frees what the generation holds, once it is over or when it never started.
 */
export function openStream<T>(
  run: (hooks: StreamHooks) => Promise<GenerationResult>,
  signal: AbortSignal | undefined,
  chunks: StreamChunks<T>,
  release: () => void,
): AsyncIterableIterator<T> {
  const stop = new AbortController();
  const stopped = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  const abort = new Promise<void>((resolve) => stopped.addEventListener("abort", () => resolve(), { once: true }));
  // Generation reaches the channel only through `ref`: a stream its reader drops unfinished is
  // collected, and then stops, instead of holding its sequence for ever.
  let started = false;
  const start = () => {
    started = true;
    let generation: Promise<GenerationResult>;
    try {
      generation = run({
        signal: stopped,
        waitForReader: () => {
          const demand = ref.deref()?.demand() ?? null;
          return demand && Promise.race([demand, abort]);
        },
        onDelta: (text, released) => {
          const chunk = chunks.delta(text, released);
          if (chunk !== undefined) ref.deref()?.push(chunk);
        },
      });
    } catch (error) {
      generation = Promise.reject(error);
    }
    generation
      .then(
        (result) => {
          for (const chunk of chunks.finish(result)) ref.deref()?.push(chunk);
          ref.deref()?.close();
        },
        // A break is no error; an abort of the caller's signal is.
        (error: unknown) => ref.deref()?.close(stop.signal.aborted && !signal?.aborted ? undefined : error),
      )
      .finally(release);
  };
  const channel = new Channel<T>(start, () => {
    stop.abort();
    if (!started) release();
  });
  const ref = new WeakRef(channel);
  abandonedStreams.register(channel, stop);
  for (const intro of chunks.intro) channel.push(intro);
  return channel;
}
