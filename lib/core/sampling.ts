// The sampling parameters, each named, checked and defaulted here once. LlamaSampler builds llama.cpp's
// chain from them (native/sampler.cpp reads them under these names); Llama's completions and chats
// take them as options; the command line and the server offer each as a flag and a request field.
// A new parameter is an entry here and its reading in native/sampler.cpp.
import { expectInteger, expectNumber, expectObject, expectString } from "../validate.js";

/** Mirostat sampling, instead of top-k/top-p/min-p/typical. */
export interface MirostatOptions {
  /** 1 or 2 (the algorithm's version); 0: off. */
  mode: 0 | 1 | 2;
  /** Target surprise. Default 5. */
  tau?: number;
  /** Learning rate. Default 0.1. */
  eta?: number;
}

/** Biases added to token logits: { [tokenId]: bias }; -Infinity bans a token. */
export type LogitBias = Record<number, number> | Map<number, number>;

interface Parameter<T> {
  /** Checks a given value (TypeError or RangeError naming `name`) and returns it. */
  check(name: string, value: unknown): T;
  /** The value when none is given; undefined: the chain leaves this step out. */
  default: T | undefined;
  /** What it does, for help texts. */
  help: string;
  /** A plain number or string, which a command-line flag or a request field can give as is. */
  scalar?: "number" | "integer" | "string";
  /** Bounds of a scalar number. */
  min?: number;
  max?: number;
  /** The value as native/sampler.cpp reads it, when not the value itself; undefined leaves it out. */
  toNative?(value: T, nVocab: number): unknown;
}

// topK and repeatLastN reach llama.cpp as int32.
const INT32_MAX = 0x7fffffff;
/** The largest seed: llama.cpp reads 0xffffffff as "random". */
export const MAX_SEED = 0xfffffffe;

function numeric(kind: "number" | "integer", min: number | undefined, max: number | undefined, fallback: number | undefined, help: string): Parameter<number> {
  const bounds = { min, max };
  return {
    check: (name, value) => (kind === "integer" ? expectInteger(name, value, bounds) : expectNumber(name, value, bounds)),
    default: fallback,
    help,
    scalar: kind,
    min,
    max,
  };
}

const mirostat: Parameter<MirostatOptions> = {
  check(name, value) {
    const m = expectObject(name, value);
    if (m.mode !== 0 && m.mode !== 1 && m.mode !== 2) throw new RangeError(`${name}.mode must be 0, 1 or 2, got ${String(m.mode)}`);
    if (m.tau !== undefined) expectNumber(`${name}.tau`, m.tau, { min: 0 });
    if (m.eta !== undefined) expectNumber(`${name}.eta`, m.eta, { min: 0 });
    return m as unknown as MirostatOptions;
  },
  default: { mode: 0 },
  help: "Mirostat sampling: version 1 or 2 (0: off), target surprise tau (5), learning rate eta (0.1)",
  toNative: (m) => ({ mode: m.mode, tau: m.tau ?? 5, eta: m.eta ?? 0.1 }),
};

const logitBias: Parameter<LogitBias> = {
  check(name, value) {
    if (!(value instanceof Map) && (typeof value !== "object" || value === null || Array.isArray(value))) {
      throw new TypeError(`${name} must be an object or a Map of token id to bias`);
    }
    return value as LogitBias;
  },
  default: undefined,
  help: "biases added to token logits, { [tokenId]: bias }; -Infinity bans a token",
  toNative: (bias, nVocab) => logitBiasArrays(bias, nVocab),
};

/** A lazy grammar's trigger: the grammar applies from where the output first shows it. */
export interface GrammarTrigger {
  /** word: a literal; pattern: a regex searched for; pattern_full: a regex all of the output so far matches; token: a token id. */
  type: "word" | "pattern" | "pattern_full" | "token";
  value: string;
  /** The token of a "token" trigger. */
  token?: number;
}

const TRIGGER_TYPES = new Set(["word", "pattern", "pattern_full", "token"]);

const grammarTriggers: Parameter<GrammarTrigger[]> = {
  check(name, value) {
    if (!Array.isArray(value)) throw new TypeError(`${name} must be an array of triggers`);
    value.forEach((entry, i) => {
      const t = expectObject(`${name}[${i}]`, entry);
      if (!TRIGGER_TYPES.has(t.type as string)) throw new RangeError(`${name}[${i}].type must be "word", "pattern", "pattern_full" or "token"`);
      if (t.type === "token") expectInteger(`${name}[${i}].token`, t.token, { min: 0, max: INT32_MAX });
      else expectString(`${name}[${i}].value`, t.value);
    });
    return value as GrammarTrigger[];
  },
  default: undefined,
  help: "make the grammar lazy: free text until one of these triggers, then the grammar",
  toNative: (triggers) => (triggers.length === 0 ? undefined : triggers.map((t) => ({ type: t.type, value: t.value ?? "", token: t.token }))),
};

/** A reasoning model's thinking tags, for reasoningBudget (a chat sets them from its template). */
export interface ReasoningTags {
  /** The tag that opens thinking, e.g. "<think>". */
  start: string;
  /** The tags that close it; the first is the one forced when the budget runs out. */
  end: string[];
  /** The end of the prompt, which may already have opened thinking. */
  prefill?: string;
}

const reasoningTags: Parameter<ReasoningTags> = {
  check(name, value) {
    const tags = expectObject(name, value);
    expectString(`${name}.start`, tags.start);
    if (!Array.isArray(tags.end) || tags.end.length === 0) throw new TypeError(`${name}.end must be a non-empty array of strings`);
    tags.end.forEach((tag, i) => expectString(`${name}.end[${i}]`, tag));
    if (tags.prefill !== undefined) expectString(`${name}.prefill`, tags.prefill);
    return tags as unknown as ReasoningTags;
  },
  default: undefined,
  help: "a reasoning model's thinking tags, for the reasoning budget",
};

const text = (help: string, fallback?: string): Parameter<string> => ({ check: expectString, default: fallback, help, scalar: "string" });

/** Every sampling parameter, in the order of llama.cpp's chain. */
export const SAMPLING_PARAMETERS = {
  /** Added to the logits of the given tokens: { [tokenId]: bias }. -Infinity bans a token. */
  logitBias,
  /** Penalise repeats of the last repeatLastN tokens (1: off). Default 1. */
  repeatPenalty: numeric("number", 0, undefined, 1, "penalty for repeated tokens; 1: off"),
  /** OpenAI's frequency penalty, -2 to 2. Default 0. */
  frequencyPenalty: numeric("number", -2, 2, 0, "OpenAI frequency penalty, -2 to 2"),
  /** OpenAI's presence penalty, -2 to 2. Default 0. */
  presencePenalty: numeric("number", -2, 2, 0, "OpenAI presence penalty, -2 to 2"),
  /** How many recent tokens the penalties look at (-1: the whole context). Default 64. */
  repeatLastN: numeric("integer", -1, INT32_MAX, 64, "tokens the penalties look back on; -1: the context"),
  /** A GBNF grammar that the output must follow. */
  grammar: { ...text("constrain the output with a GBNF grammar"), toNative: (grammar: string) => (grammar.trim() === "" ? undefined : grammar) },
  /** The grammar's start rule. Default "root". */
  grammarRoot: text("the grammar's start rule", "root"),
  /** A lazy grammar: the output is free until one of these triggers shows, then follows the grammar. */
  grammarTriggers,
  /** Text the prompt ends with that the grammar's output starts from (fed to a grammar that is not lazy). */
  grammarPrefill: text("prompt text that the grammar's output starts from"),
  /** Tokens a reasoning model may think before its end tag is forced (-1: no limit; 0: no thinking). Default -1. */
  reasoningBudget: numeric("integer", -1, INT32_MAX, undefined, "tokens a reasoning model may think before its end tag is forced; -1: no limit"),
  /** The thinking tags reasoningBudget watches (a chat sets them from its template). */
  reasoningTags,
  /** Keep the k most likely tokens (0: all). Default 40. */
  topK: numeric("integer", 0, INT32_MAX, 40, "keep the K most likely tokens; 0: all"),
  /** Locally typical sampling (1: off). Default 1. */
  typicalP: numeric("number", 0, 1, 1, "locally typical sampling; 1: off"),
  /** Nucleus sampling (1: off). Default 0.95. */
  topP: numeric("number", 0, 1, 0.95, "nucleus sampling; 1: off"),
  /** Drop tokens below minP times the best one's probability (0: off). Default 0.05. */
  minP: numeric("number", 0, 1, 0.05, "drop tokens below P times the best one's probability; 0: off"),
  /** 0 picks the most likely token (greedy). Default 0.8 (Llama's chats: 0.2). */
  temperature: numeric("number", 0, undefined, 0.8, "temperature; 0: greedy"),
  /** Mirostat sampling instead of top-k/top-p/min-p/typical. Default off. */
  mirostat,
  /** Seed of the random pick; the same seed gives the same text. Default: random. */
  seed: numeric("integer", 0, MAX_SEED, undefined, "sampling seed (default: random)"),
};

type ParameterValue<P> = P extends Parameter<infer T> ? T : never;

/** Sampling options: every parameter of SAMPLING_PARAMETERS, each optional. */
export type SamplerOptions = { -readonly [K in keyof typeof SAMPLING_PARAMETERS]?: ParameterValue<(typeof SAMPLING_PARAMETERS)[K]> };

export type SamplingParameterName = keyof typeof SAMPLING_PARAMETERS;

/** The checks of checkOptions for every sampling parameter. */
export const samplingChecks = Object.fromEntries(
  Object.entries(SAMPLING_PARAMETERS).map(([name, parameter]) => [name, (path: string, value: unknown) => parameter.check(path, value)]),
) as { [K in SamplingParameterName]: (name: string, value: unknown) => unknown };

/** The parameters a command-line flag or request field can give as a plain number or string. */
export function scalarSamplingParameters(): Array<{ name: SamplingParameterName; scalar: "number" | "integer" | "string"; min?: number; max?: number; help: string; default: unknown }> {
  return Object.entries(SAMPLING_PARAMETERS).flatMap(([name, p]: [string, Parameter<unknown>]) =>
    p.scalar ? [{ name: name as SamplingParameterName, scalar: p.scalar, min: p.min, max: p.max, help: p.help, default: p.default }] : [],
  );
}

function randomSeed(): number {
  return Math.floor(Math.random() * MAX_SEED);
}

/**
 * Every parameter's value for the native chain: the given one, else the default, under its name
 * (native/sampler.cpp reads it so); the seed is a random one when none is given.
 */
export function resolveSampling(options: SamplerOptions, nVocab: number): { seed: number; native: Record<string, unknown> } {
  const native: Record<string, unknown> = {};
  for (const [name, parameter] of Object.entries(SAMPLING_PARAMETERS) as Array<[SamplingParameterName, Parameter<unknown>]>) {
    const value = options[name] ?? parameter.default;
    if (value === undefined) continue;
    const converted = parameter.toNative ? parameter.toNative(value, nVocab) : value;
    if (converted !== undefined) native[name] = converted;
  }
  const seed = options.seed ?? randomSeed();
  native.seed = seed;
  return { seed, native };
}

/** Logit biases as parallel arrays of token ids and biases, checked against the vocabulary. */
function logitBiasArrays(bias: LogitBias, nVocab: number): { tokens: Int32Array; values: Float32Array } {
  // A Map's keys must be numbers; an object's keys are strings, read as numbers where they are.
  const entries: Array<[unknown, unknown]> =
    bias instanceof Map ? [...bias] : Object.entries(bias).map(([key, value]) => [key.trim() !== "" && Number.isFinite(Number(key)) ? Number(key) : key, value]);
  const tokens = new Int32Array(entries.length);
  const values = new Float32Array(entries.length);
  entries.forEach(([token, value], i) => {
    const id = expectInteger("options.logitBias token", token, { min: 0, max: nVocab - 1 });
    if (typeof value !== "number" || Number.isNaN(value)) throw new TypeError(`options.logitBias[${id}] must be a number`);
    tokens[i] = id;
    values[i] = value;
  });
  return { tokens, values };
}
