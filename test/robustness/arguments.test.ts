// Every public function of the core API, given wrong types, NaN, fractions, negative or huge
// numbers, throws (or rejects with) a TypeError or RangeError that names the argument, before
// anything reaches llama.cpp; and the objects stay usable afterwards.
import { join } from "node:path";
import { tmpdir } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  LlamaModel,
  LlamaSampler,
  TokenDecoder,
  generateTokens,
  measureSpeed,
  quantize,
  renderReport,
  toCsv,
  toHtml,
  toJson,
  toMarkdown,
  setLogger,
  type LlamaContext,
} from "../../lib/index.js";
import { errorOf, modelPath } from "../helpers.js";

/** A numeric kind is an integer unless `real`; bounds are inclusive. */
type Kind = "string" | "boolean" | "function" | "object" | "tokens" | "handle" | { min?: number; max?: number; real?: boolean };

/** Values that must be refused for an argument of this kind, each with the error class expected. */
function badValues(kind: Kind): Array<[string, unknown, typeof TypeError | typeof RangeError]> {
  const wrongType = (...values: unknown[]) => values.map((v): [string, unknown, typeof TypeError] => [show(v), v, TypeError]);
  switch (kind) {
    case "string":
      return wrongType(null, 42, {}, [], true, Symbol("s"));
    case "boolean":
      return wrongType(null, 1, "true", {});
    case "function":
      return wrongType(null, 1, "f", {});
    case "object":
      return wrongType(null, "x", 42, [], true);
    case "handle":
      return wrongType(null, undefined, {}, 42, "x");
    case "tokens":
      return [
        ...wrongType(null, "abc", 42, {}),
        ["[1.5]", [1.5], RangeError],
        ["[-1]", [-1], RangeError],
        ["[NaN]", [Number.NaN], RangeError],
        ["[2^31]", [2 ** 31], RangeError],
        ['["1"]', ["1"], TypeError],
      ];
    default: {
      const out: Array<[string, unknown, typeof TypeError | typeof RangeError]> = [
        ...wrongType(null, "1", {}, true, 1n),
        ["NaN", Number.NaN, RangeError],
        ["Infinity", Number.POSITIVE_INFINITY, RangeError],
        ["-Infinity", Number.NEGATIVE_INFINITY, RangeError],
      ];
      // Integers: no fractions, nothing past 2^53; real numbers: only their bounds.
      if (!kind.real) out.push(["0.5", 0.5, RangeError], ["2^53", 2 ** 53, RangeError], ["1e300", 1e300, RangeError], ["-1e300", -1e300, RangeError]);
      else if (kind.max !== undefined) out.push(["1e300", 1e300, RangeError]);
      if (kind.min !== undefined) out.push([`${kind.min - 1}`, kind.min - 1, RangeError]);
      if (kind.max !== undefined) out.push([`${kind.max + 1}`, kind.max + 1, RangeError]);
      return out;
    }
  }
}

function show(value: unknown): string {
  if (typeof value === "symbol") return "a symbol";
  if (typeof value === "bigint") return `${value}n`;
  return value === undefined ? "undefined" : JSON.stringify(value);
}

interface ArgumentCase {
  /** The name the message must contain, e.g. "options.nCtx". */
  name: string;
  kind: Kind;
  call: (value: unknown) => unknown;
}

function cases(list: ArgumentCase[]): Array<[string, string, unknown, typeof TypeError | typeof RangeError, ArgumentCase]> {
  return list.flatMap((c) => badValues(c.kind).map(([label, value, type]): [string, string, unknown, typeof TypeError | typeof RangeError, ArgumentCase] => [c.name, label, value, type, c]));
}

const INT32_MAX = 0x7fffffff;
let model: LlamaModel;
let context: LlamaContext;
let sampler: LlamaSampler;
const stories = () => modelPath("stories260K.gguf");
const u = <T>(value: unknown) => value as T;

beforeAll(async () => {
  model = await LlamaModel.load(stories());
  context = await model.createContext({ nCtx: 64, nBatch: 32, nThreads: 1 });
  sampler = model.createSampler({ temperature: 0 });
  await context.decode({ tokens: [1, 403, 407] });
});
afterAll(async () => {
  sampler.dispose();
  await context.dispose();
  model.dispose();
});

describe("wrong arguments are TypeError or RangeError naming the argument", () => {
  const modelCases = () => [
    { name: "path", kind: "string" as Kind, call: (v: unknown) => LlamaModel.load(u(v)) },
    { name: "options", kind: "object" as Kind, call: (v: unknown) => LlamaModel.load(stories(), u(v)) },
    { name: "options.nGpuLayers", kind: { min: -1 }, call: (v: unknown) => LlamaModel.load(stories(), { nGpuLayers: u(v) }) },
    { name: "options.mainGpu", kind: { min: 0 }, call: (v: unknown) => LlamaModel.load(stories(), { mainGpu: u(v) }) },
    ...(["useMmap", "useMlock", "vocabOnly", "checkTensors"] as const).map((key) => ({
      name: `options.${key}`,
      kind: "boolean" as Kind,
      call: (v: unknown) => LlamaModel.load(stories(), { [key]: v }),
    })),
    { name: "options.onProgress", kind: "function" as Kind, call: (v: unknown) => LlamaModel.load(stories(), { onProgress: u(v) }) },
    { name: "options.signal", kind: "handle" as Kind, call: (v: unknown) => LlamaModel.load(stories(), { signal: u(v ?? {}) }) },
    { name: "text", kind: "string" as Kind, call: (v: unknown) => model.tokenize(u(v)) },
    { name: "options.addSpecial", kind: "boolean" as Kind, call: (v: unknown) => model.tokenize("x", { addSpecial: u(v) }) },
    { name: "options.parseSpecial", kind: "boolean" as Kind, call: (v: unknown) => model.tokenize("x", { parseSpecial: u(v) }) },
    { name: "tokens", kind: "tokens" as Kind, call: (v: unknown) => model.detokenize(u(v)) },
    { name: "options.removeSpecial", kind: "boolean" as Kind, call: (v: unknown) => model.detokenize([1], { removeSpecial: u(v) }) },
    { name: "token", kind: { min: 0, max: 511 }, call: (v: unknown) => model.tokenBytes(u(v)) },
    { name: "special", kind: "boolean" as Kind, call: (v: unknown) => model.tokenBytes(1, u(v)) },
    { name: "token", kind: { min: 0, max: 511 }, call: (v: unknown) => model.tokenText(u(v)) },
    { name: "name", kind: "string" as Kind, call: (v: unknown) => model.chatTemplate(u(v ?? 1)) },
    { name: "options.special", kind: "boolean" as Kind, call: (v: unknown) => model.createTokenDecoder({ special: u(v) }) },
    { name: "token", kind: { min: 0, max: 511 }, call: (v: unknown) => model.createTokenDecoder().push(u(v)) },
    { name: "bytesOf", kind: "function" as Kind, call: (v: unknown) => new TokenDecoder(u(v ?? 1)) },
  ];

  const contextCases = () => [
    { name: "options", kind: "object" as Kind, call: (v: unknown) => model.createContext(u(v)) },
    { name: "options.nCtx", kind: { min: 0, max: 1 << 24 }, call: (v: unknown) => model.createContext({ nCtx: u(v) }) },
    { name: "options.nBatch", kind: { min: 1, max: 1 << 20 }, call: (v: unknown) => model.createContext({ nBatch: u(v) }) },
    { name: "options.nUbatch", kind: { min: 1, max: 1 << 20 }, call: (v: unknown) => model.createContext({ nUbatch: u(v) }) },
    { name: "options.nSeqMax", kind: { min: 1 }, call: (v: unknown) => model.createContext({ nSeqMax: u(v) }) },
    { name: "options.nThreads", kind: { min: 1, max: 1024 }, call: (v: unknown) => model.createContext({ nThreads: u(v) }) },
    { name: "options.nThreadsBatch", kind: { min: 1, max: 1024 }, call: (v: unknown) => model.createContext({ nThreadsBatch: u(v) }) },
    { name: "options.embeddings", kind: "boolean" as Kind, call: (v: unknown) => model.createContext({ embeddings: u(v) }) },
    { name: "options.kvUnified", kind: "boolean" as Kind, call: (v: unknown) => model.createContext({ kvUnified: u(v) }) },
    { name: "options.typeK", kind: "string" as Kind, call: (v: unknown) => model.createContext({ typeK: u(v) }) },
    { name: "batch", kind: "object" as Kind, call: (v: unknown) => context.decode(u(v)) },
    { name: "batch.tokens", kind: "tokens" as Kind, call: (v: unknown) => context.decode({ tokens: u(v) }) },
    { name: "batch.positions", kind: "tokens" as Kind, call: (v: unknown) => context.decode({ tokens: [1], positions: u(v) }) },
    { name: "batch.seqIds", kind: { min: 0, max: 0 }, call: (v: unknown) => context.decode({ tokens: [1], seqIds: u(v) }) },
    { name: "index", kind: { min: 0 }, call: (v: unknown) => context.logits(u(v)) },
    { name: "index", kind: { min: 0 }, call: (v: unknown) => context.embeddings(u(v)) },
    { name: "seqId", kind: { min: 0, max: 0 }, call: (v: unknown) => context.sequenceEmbeddings(u(v)) },
    { name: "seqId", kind: { min: 0, max: 0 }, call: (v: unknown) => context.positionRange(u(v)) },
    { name: "seqId", kind: { min: 0, max: 0 }, call: (v: unknown) => context.keepSequence(u(v)) },
    { name: "seqId", kind: { min: -1, max: 0 }, call: (v: unknown) => context.removeTokens(u(v)) },
    { name: "src", kind: { min: 0, max: 0 }, call: (v: unknown) => context.copySequence(u(v), 0) },
    { name: "nThreads", kind: { min: 1, max: 1024 }, call: (v: unknown) => context.setThreads(u(v)) },
    { name: "samples[0].sampler", kind: "handle" as Kind, call: (v: unknown) => context.decodeAndSample({ tokens: [1] }, [{ sampler: u(v), index: 0 }]) },
    { name: "samples[0].index", kind: { min: 0 }, call: (v: unknown) => context.decodeAndSample({ tokens: [1] }, [{ sampler, index: u(v) }]) },
    { name: "options.logprobs", kind: { min: 0, max: 1000 }, call: (v: unknown) => context.decodeAndSample({ tokens: [1] }, [{ sampler, index: 0 }], { logprobs: u(v) }) },
    { name: "path", kind: "string" as Kind, call: (v: unknown) => context.saveStateFile(u(v), [1]) },
    { name: "tokens", kind: "tokens" as Kind, call: (v: unknown) => context.saveStateFile(join(tmpdir(), "llama-napi-never-written"), u(v)) },
    { name: "path", kind: "string" as Kind, call: (v: unknown) => context.loadStateFile(u(v)) },
  ];

  const samplerCases = () => [
    { name: "model", kind: "handle" as Kind, call: (v: unknown) => new LlamaSampler(u(v)) },
    { name: "options", kind: "object" as Kind, call: (v: unknown) => model.createSampler(u(v)) },
    ...(["temperature", "repeatPenalty"] as const).map((key) => ({ name: `options.${key}`, kind: { min: 0, real: true } as Kind, call: (v: unknown) => model.createSampler({ [key]: v }) })),
    ...(["topP", "minP", "typicalP"] as const).map((key) => ({ name: `options.${key}`, kind: { min: 0, max: 1, real: true } as Kind, call: (v: unknown) => model.createSampler({ [key]: v }) })),
    ...(["frequencyPenalty", "presencePenalty"] as const).map((key) => ({ name: `options.${key}`, kind: { min: -2, max: 2, real: true } as Kind, call: (v: unknown) => model.createSampler({ [key]: v }) })),
    { name: "options.topK", kind: { min: 0, max: INT32_MAX }, call: (v: unknown) => model.createSampler({ topK: u(v) }) },
    { name: "options.repeatLastN", kind: { min: -1, max: INT32_MAX }, call: (v: unknown) => model.createSampler({ repeatLastN: u(v) }) },
    { name: "options.seed", kind: { min: 0, max: 0xfffffffe }, call: (v: unknown) => model.createSampler({ seed: u(v) }) },
    { name: "options.mirostat", kind: "object" as Kind, call: (v: unknown) => model.createSampler({ mirostat: u(v) }) },
    { name: "options.mirostat.tau", kind: { min: 0, real: true }, call: (v: unknown) => model.createSampler({ mirostat: { mode: 2, tau: u(v) } }) },
    { name: "options.grammar", kind: "string" as Kind, call: (v: unknown) => model.createSampler({ grammar: u(v) }) },
    { name: "options.logitBias token", kind: { min: 0, max: 511 }, call: (v: unknown) => model.createSampler({ logitBias: new Map([[u<number>(v), 1]]) }) },
    { name: "context", kind: "handle" as Kind, call: (v: unknown) => sampler.sample(u(v), 0) },
    { name: "index", kind: { min: 0 }, call: (v: unknown) => sampler.sample(context, u(v)) },
    { name: "token", kind: { min: 0, max: 511 }, call: (v: unknown) => sampler.accept(u(v)) },
  ];

  const functionCases = () => [
    { name: "context", kind: "handle" as Kind, call: (v: unknown) => generateTokens(u(v), sampler, [1]) },
    { name: "sampler", kind: "handle" as Kind, call: (v: unknown) => generateTokens(context, u(v), [1]) },
    { name: "prompt", kind: "tokens" as Kind, call: (v: unknown) => generateTokens(context, sampler, u(v)) },
    { name: "options.maxTokens", kind: { min: 0 }, call: (v: unknown) => generateTokens(context, sampler, [1], { maxTokens: u(v) }) },
    { name: "options.seqId", kind: { min: 0, max: 0 }, call: (v: unknown) => generateTokens(context, sampler, [1], { seqId: u(v) }) },
    { name: "options.stopAtEog", kind: "boolean" as Kind, call: (v: unknown) => generateTokens(context, sampler, [1], { stopAtEog: u(v) }) },
    { name: "input", kind: "string" as Kind, call: (v: unknown) => quantize(u(v), "out.gguf", { type: "Q8_0" }) },
    { name: "output", kind: "string" as Kind, call: (v: unknown) => quantize(stories(), u(v), { type: "Q8_0" }) },
    { name: "options", kind: "object" as Kind, call: (v: unknown) => quantize(stories(), "out.gguf", u(v)) },
    { name: "options.threads", kind: { min: 0, max: 1024 }, call: (v: unknown) => quantize(stories(), "out.gguf", { type: "Q8_0", threads: u(v) }) },
    { name: "logger", kind: "function" as Kind, call: (v: unknown) => setLogger(u(v ?? 1)) },
  ];

  // Each refused before a child process starts: a symbol would not even survive the trip to it.
  const quantLabCases = () => [
    { name: "path", kind: "string" as Kind, call: (v: unknown) => measureSpeed(u(v)) },
    { name: "options", kind: "object" as Kind, call: (v: unknown) => measureSpeed(stories(), u(v)) },
    ...(["nPrompt", "nGen", "nBatch", "nUbatch"] as const).map((key) => ({
      name: `options.${key}`,
      kind: { min: 1, max: 1 << 20 } as Kind,
      call: (v: unknown) => measureSpeed(stories(), { [key]: v }),
    })),
    { name: "options.repetitions", kind: { min: 1, max: 1000 }, call: (v: unknown) => measureSpeed(stories(), { repetitions: u(v) }) },
    { name: "options.threads", kind: { min: 1, max: 1024 }, call: (v: unknown) => measureSpeed(stories(), { threads: u(v) }) },
    { name: "hooks.onProgress", kind: "function" as Kind, call: (v: unknown) => measureSpeed(stories(), {}, { onProgress: u(v) }) },
    ...[toMarkdown, toCsv, toJson, toHtml].map((render) => ({ name: "report", kind: "object" as Kind, call: (v: unknown) => render(u(v)) })),
    { name: "report.models", kind: "object" as Kind, call: (v: unknown) => toMarkdown(u({ settings: {}, system: {}, models: v === null ? null : [v] })) },
    { name: "path", kind: "string" as Kind, call: (v: unknown) => renderReport(u({ settings: {}, system: {}, models: [] }), u(v)) },
  ];

  for (const [group, list] of [
    ["LlamaModel and TokenDecoder", modelCases],
    ["LlamaContext", contextCases],
    ["LlamaSampler", samplerCases],
    ["generateTokens, quantize, setLogger", functionCases],
    ["measureSpeed and the report renderers", quantLabCases],
  ] as const) {
    it(`${group}`, async () => {
      for (const [name, label, value, type, c] of cases(list())) {
        const error = await errorOf(() => c.call(value));
        const what = `${name} = ${label}`;
        expect(error, what).toBeInstanceOf(type);
        expect((error as Error).message, what).toContain(name.replace(/ token$/, ""));
      }
    });
  }

  it("unknown options are TypeErrors naming them", async () => {
    const calls: Array<[string, () => unknown]> = [
      ["options.nctx", () => model.createContext({ nctx: 8 } as object)],
      ["options.temp", () => model.createSampler({ temp: 0 } as object)],
      ["options.mmap", () => LlamaModel.load(stories(), { mmap: false } as object)],
      ["options.max_tokens", () => generateTokens(context, sampler, [1], { max_tokens: 1 } as object)],
      ["options.add_special", () => model.tokenize("x", { add_special: true } as object)],
      ["options.Special", () => model.createTokenDecoder({ Special: true } as object)],
    ];
    for (const [name, call] of calls) {
      const error = await errorOf(call);
      expect(error, name).toBeInstanceOf(TypeError);
      expect((error as Error).message).toContain(`${name} is not a known option`);
    }
  });
});

describe("after all that", () => {
  it("the model, context and sampler still work", async () => {
    context.clear();
    const out: number[] = [];
    for await (const t of generateTokens(context, sampler, model.tokenize("Once upon a time"), { maxTokens: 5 })) out.push(t);
    expect(out.length).toBe(5);
    expect(model.detokenize(out).length).toBeGreaterThan(0);
  });
});
