import { callNative } from "./abort.js";
import { LlamaError } from "../errors.js";
import type { LoadedModel } from "./loaded-model.js";
import { native } from "./binding.js";
import type { NativeContext, NativeSampler, NativeSamplerOptions } from "./native.js";
import { checkOptions, expectHandle, expectInteger, expectNumber, expectObject, integer, number, string } from "../validate.js";

export interface MirostatOptions {
  /** 1 or 2. */
  mode: 1 | 2;
  /** Target surprise. Default 5. */
  tau?: number;
  /** Learning rate. Default 0.1. */
  eta?: number;
}

export interface SamplerOptions {
  /** 0 picks the most likely token (greedy). Default 0.8. */
  temperature?: number;
  /** Keep the k most likely tokens (0: all). Default 40. */
  topK?: number;
  /** Nucleus sampling (1: off). Default 0.95. */
  topP?: number;
  /** Drop tokens below minP times the best one's probability (0: off). Default 0.05. */
  minP?: number;
  /** Locally typical sampling (1: off). Default 1. */
  typicalP?: number;
  /** Penalise repeats of the last repeatLastN tokens (1: off). Default 1. */
  repeatPenalty?: number;
  frequencyPenalty?: number;
  presencePenalty?: number;
  /** How many recent tokens the penalties look at (-1: the whole context). Default 64. */
  repeatLastN?: number;
  mirostat?: MirostatOptions;
  /** Seed of the random pick; the same seed gives the same text. Default: random. */
  seed?: number;
  /** Added to the logits of the given tokens: { [tokenId]: bias }. -Infinity bans a token. */
  logitBias?: Record<number, number> | Map<number, number>;
  /** A GBNF grammar that output must follow. */
  grammar?: string;
  /** The grammar's start rule. Default "root". */
  grammarRoot?: string;
}

/** The context whose logits sample() reads: a LlamaContext (typed by what is read, as the context's file imports this one). */
export interface LogitsSource {
  readonly native: NativeContext;
  readonly nCtxSeq: number;
}

// topK and repeatLastN reach llama.cpp as int32.
const INT32_MAX = 0x7fffffff;

function randomSeed(): number {
  return Math.floor(Math.random() * 0xfffffffe);
}

/** A llama.cpp sampler chain: penalties, grammar, truncation, temperature, then the pick. */
export class LlamaSampler {
  readonly model: LoadedModel;
  /** The seed actually used (a random one unless given). */
  readonly seed: number;
  #native: NativeSampler | null;

  constructor(model: LoadedModel, options: SamplerOptions = {}) {
    expectHandle("model", model, "LlamaModel", "nVocab");
    this.model = model;
    const o = checkOptions<SamplerOptions>("options", options, {
      temperature: number({ min: 0 }),
      topK: integer({ min: 0, max: INT32_MAX }),
      topP: number({ min: 0, max: 1 }),
      minP: number({ min: 0, max: 1 }),
      typicalP: number({ min: 0, max: 1 }),
      repeatPenalty: number({ min: 0 }),
      frequencyPenalty: number({ min: -2, max: 2 }),
      presencePenalty: number({ min: -2, max: 2 }),
      repeatLastN: integer({ min: -1, max: INT32_MAX }),
      mirostat: (name, value) => {
        const m = expectObject(name, value);
        if (m.mode !== 1 && m.mode !== 2) throw new RangeError(`${name}.mode must be 1 or 2, got ${String(m.mode)}`);
        if (m.tau !== undefined) expectNumber(`${name}.tau`, m.tau, { min: 0 });
        if (m.eta !== undefined) expectNumber(`${name}.eta`, m.eta, { min: 0 });
      },
      seed: integer({ min: 0, max: 0xfffffffe }),
      logitBias: (name, value) => {
        if (!(value instanceof Map) && (typeof value !== "object" || value === null || Array.isArray(value))) {
          throw new TypeError(`${name} must be an object or a Map of token id to bias`);
        }
      },
      grammar: string,
      grammarRoot: string,
    });
    this.seed = o.seed ?? randomSeed();
    const nativeOptions: NativeSamplerOptions = {
      temperature: o.temperature ?? 0.8,
      topK: o.topK ?? 40,
      topP: o.topP ?? 0.95,
      minP: o.minP ?? 0.05,
      typicalP: o.typicalP ?? 1,
      repeatPenalty: o.repeatPenalty ?? 1,
      frequencyPenalty: o.frequencyPenalty ?? 0,
      presencePenalty: o.presencePenalty ?? 0,
      penaltyLastN: o.repeatLastN ?? 64,
      mirostat: o.mirostat?.mode ?? 0,
      mirostatTau: o.mirostat?.tau ?? 5,
      mirostatEta: o.mirostat?.eta ?? 0.1,
      seed: this.seed,
    };
    if (o.grammar !== undefined && o.grammar.trim() !== "") {
      nativeOptions.grammar = o.grammar;
      nativeOptions.grammarRoot = o.grammarRoot ?? "root";
    }
    if (o.logitBias !== undefined) {
      // A Map's keys must be numbers; an object's keys are strings, read as numbers where they are.
      const entries: Array<[unknown, unknown]> =
        o.logitBias instanceof Map
          ? [...o.logitBias]
          : Object.entries(o.logitBias).map(([key, bias]) => [key.trim() !== "" && Number.isFinite(Number(key)) ? Number(key) : key, bias]);
      nativeOptions.logitBiasTokens = new Int32Array(entries.length);
      nativeOptions.logitBiasValues = new Float32Array(entries.length);
      entries.forEach(([token, bias], i) => {
        const id = expectInteger(`options.logitBias token`, token, { min: 0, max: model.nVocab - 1 });
        if (typeof bias !== "number" || Number.isNaN(bias)) throw new TypeError(`options.logitBias[${id}] must be a number`);
        nativeOptions.logitBiasTokens![i] = id;
        nativeOptions.logitBiasValues![i] = bias;
      });
    }
    this.#native = callNative(() => new native.Sampler(model.native, nativeOptions));
  }

  get native(): NativeSampler {
    if (this.#native === null) throw new LlamaError("DISPOSED", "the sampler has been disposed");
    return this.#native;
  }

  /** The samplers of the chain, in order (e.g. ["penalties", "top-k", ..., "dist"]). */
  describe(): string[] {
    return callNative(() => this.native.describe());
  }

  /** Samples a token from the logits of a batch index of the context's last decode, and accepts it. */
  sample(context: LogitsSource, index: number): number {
    expectHandle("context", context, "LlamaContext", "nCtxSeq");
    expectInteger("index", index, { min: 0 });
    return callNative(() => this.native.sample(context.native, index));
  }

  /** Tells the chain a token was chosen (for penalties, grammar, mirostat state). */
  accept(token: number): void {
    expectInteger("token", token, { min: 0, max: this.model.nVocab - 1 });
    callNative(() => this.native.accept(token));
  }

  /** Forgets accepted tokens (penalty history, grammar position). */
  reset(): void {
    callNative(() => this.native.reset());
  }

  dispose(): void {
    if (this.#native === null) return;
    this.#native.dispose();
    this.#native = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }
}
