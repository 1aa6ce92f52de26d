// The one factory of native batches: every batch that reaches the addon is made here, so that its
// arrays agree in length and its positions, sequences and logit flags are filled in one way.
import { expectInteger, expectObject, toTokenArray } from "../validate.js";
import type { NativeBatchArrays } from "./native.js";

declare const madeByBatchFactory: unique symbol;

/** A batch in the addon's form. Only this file creates them (the brand keeps other files from it). */
export type NativeBatch = NativeBatchArrays & { readonly [madeByBatchFactory]: true };

/** Tokens to evaluate, each with its position and sequence. */
export interface Batch {
  tokens: Int32Array | readonly number[];
  /** Default: each token continues its sequence, after the last position in the KV cache. */
  positions?: Int32Array | readonly number[];
  /** One sequence for all tokens, or one per token. Default 0. */
  seqIds?: number | Int32Array | readonly number[];
  /** Which tokens keep logits: "last" (default), "all", "none", or one flag per token. */
  logits?: "last" | "all" | "none" | Uint8Array | readonly boolean[];
}

/** What a batch is checked against: the context's limits and where each sequence goes on. */
export interface BatchLimits {
  nBatch: number;
  nSeqMax: number;
  /** The position after the last one a sequence holds. */
  nextPosition(seqId: number): number;
}

const made = new WeakSet<object>();

function seal(arrays: NativeBatchArrays): NativeBatch {
  made.add(arrays);
  return arrays as NativeBatch;
}

/** Whether `value` came from this factory (and so needs no checks). */
export function isNativeBatch(value: unknown): value is NativeBatch {
  return typeof value === "object" && value !== null && made.has(value);
}

/** Consecutive tokens of one sequence from `position` on, with logits for the last token or none. */
export function sequenceBatch(tokens: Int32Array, position: number, seqId: number, logits: "last" | "none"): NativeBatch {
  const flags = new Uint8Array(tokens.length);
  if (logits === "last") flags[tokens.length - 1] = 1;
  return seal({
    tokens,
    positions: Int32Array.from(tokens, (_, i) => position + i),
    seqIds: new Int32Array(tokens.length).fill(seqId),
    logits: flags,
  });
}

/**
 * A prompt of one sequence in batches of at most `nBatch` tokens. Only the last batch keeps logits,
 * for its last token: `sampleIndex` is that token's index there, null in the batches before it.
 */
export function* promptBatches(
  prompt: Int32Array,
  position: number,
  seqId: number,
  nBatch: number,
): Generator<{ batch: NativeBatch; sampleIndex: number | null }> {
  const headLength = Math.floor((prompt.length - 1) / nBatch) * nBatch;
  for (let start = 0; start < headLength; start += nBatch) {
    yield { batch: sequenceBatch(prompt.subarray(start, start + nBatch), position + start, seqId, "none"), sampleIndex: null };
  }
  const last = prompt.subarray(headLength);
  yield { batch: sequenceBatch(last, position + headLength, seqId, "last"), sampleIndex: last.length - 1 };
}

/** A batch assembled token by token, for batches that mix sequences. */
export class BatchBuilder {
  readonly #tokens: number[] = [];
  readonly #positions: number[] = [];
  readonly #seqIds: number[] = [];
  readonly #logits: number[] = [];

  get length(): number {
    return this.#tokens.length;
  }

  /** Adds a token; returns its index in the batch. */
  add(token: number, position: number, seqId: number, logits: boolean): number {
    this.#tokens.push(token);
    this.#positions.push(position);
    this.#seqIds.push(seqId);
    this.#logits.push(logits ? 1 : 0);
    return this.#tokens.length - 1;
  }

  build(): NativeBatch {
    return seal({
      tokens: Int32Array.from(this.#tokens),
      positions: Int32Array.from(this.#positions),
      seqIds: Int32Array.from(this.#seqIds),
      logits: Uint8Array.from(this.#logits),
    });
  }
}

/** Checks a Batch and converts it, filling default positions, sequences and logits. */
export function toNativeBatch(batch: Batch, limits: BatchLimits): NativeBatch {
  const b = expectObject("batch", batch);
  const tokens = toTokenArray("batch.tokens", b.tokens);
  const n = tokens.length;
  if (n === 0) throw new RangeError("batch.tokens must not be empty");
  if (n > limits.nBatch) throw new RangeError(`batch.tokens has ${n} tokens, more than nBatch (${limits.nBatch})`);
  let seqIds: Int32Array;
  if (b.seqIds === undefined || typeof b.seqIds === "number") {
    const seq = b.seqIds === undefined ? 0 : expectInteger("batch.seqIds", b.seqIds, { min: 0, max: limits.nSeqMax - 1 });
    seqIds = new Int32Array(n).fill(seq);
  } else {
    seqIds = toTokenArray("batch.seqIds", b.seqIds);
    if (seqIds.length !== n) throw new RangeError("batch.seqIds must have one entry per token");
  }
  let positions: Int32Array;
  if (b.positions === undefined) {
    positions = new Int32Array(n);
    const next = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const seq = seqIds[i]!;
      const pos = next.get(seq) ?? limits.nextPosition(seq);
      positions[i] = pos;
      next.set(seq, pos + 1);
    }
  } else {
    positions = toTokenArray("batch.positions", b.positions);
    if (positions.length !== n) throw new RangeError("batch.positions must have one entry per token");
  }
  const logits = new Uint8Array(n);
  const want = b.logits ?? "last";
  if (want === "last") logits[n - 1] = 1;
  else if (want === "all") logits.fill(1);
  else if (want !== "none") {
    if (!(want instanceof Uint8Array) && !Array.isArray(want)) {
      throw new TypeError('batch.logits must be "last", "all", "none" or one flag per token');
    }
    if (want.length !== n) throw new RangeError("batch.logits must have one flag per token");
    for (let i = 0; i < n; i++) logits[i] = want[i] ? 1 : 0;
  }
  return seal({ tokens, positions, seqIds, logits });
}
