/**
 * The quantization lab: quantizes a base model into the types asked for (those not on disk yet),
 * then measures every model's size, speed (llama-bench's method, in a child process each), peak
 * memory and, given a text, perplexity (llama-perplexity's method) and divergence from the base.
 * Reports come from lib/tools/report.ts.
 */
import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { basename, dirname, extname, join } from "node:path";
import { buildInfo, devices } from "../core/backend.js";
import { LlamaError } from "../errors.js";
import { readGgufHeader } from "../gguf/reader.js";
import { compareModels, perplexity, type ModelComparison, type PerplexityResult } from "./perplexity.js";
import { parseQuantType, quantize, quantTypeName, type QuantType } from "./quantize.js";
import { measureSpeed, speedOptionChecks, type SpeedProgress, type SpeedResult } from "./speed.js";
import { checkOptions, expectObject, expectString, func, integer, signal, string, withAlias } from "../validate.js";
import type { DraftOptions } from "../completion/options.js";
import { measureSpeculative, type SpeculativeSpeed } from "./speculative.js";

export interface BenchOptions {
  /** Model files to measure. */
  models?: string[];
  /** A base model: measured first, and the reference of the KL divergence of the others. */
  base?: string;
  /** Types to quantize the base into; files already in quantDir are reused. */
  types?: Array<QuantType | string>;
  /** Where quantized files go, named like the base with the type: model-f16.gguf gives model-Q4_0.gguf. Default: beside the base. */
  quantDir?: string;
  /** An importance matrix file for the types that need one. */
  imatrix?: string;
  /** A text file for perplexity and, with a base, KL divergence. */
  text?: string;
  /** Tokens per perplexity chunk (llama-perplexity -c). Default 512. */
  nCtx?: number;
  /** Perplexity chunks to use at most. Default: all the text holds. */
  nChunks?: number;
  /** llama-bench's -p, -n, -r, -b, -ub. Defaults 512, 128, 5, 2048, 512. */
  nPrompt?: number;
  nGen?: number;
  repetitions?: number;
  nBatch?: number;
  nUbatch?: number;
  /** Threads for everything. Default: the library's default. */
  nThreads?: number;
  /** Also measure speculative decoding with this draft: greedy generation with it against without, per model. */
  draft?: DraftOptions;
  /** @deprecated The older name of nThreads (still accepted). */
  threads?: number;
  onProgress?: (event: BenchProgress) => void;
  signal?: AbortSignal;
}

export type BenchProgress =
  | { phase: "quantize"; model: string; type: QuantType; fraction: number }
  | { phase: "speed"; model: string; progress: SpeedProgress }
  | { phase: "quality"; model: string; chunksDone: number; chunksTotal: number }
  | { phase: "speculative"; model: string };

/** What the quality pass measured against the base (the base's own figures are in its perplexity). */
export type BaseDivergence = Omit<ModelComparison, "base" | "candidate">;

export interface BenchModelResult extends SpeedResult {
  path: string;
  /** The quantization type from the file's general.file_type, e.g. "Q4_K_M" (llama.cpp's name). */
  type: string;
  isBase: boolean;
  fileSize: number;
  /** modelSize × 8 / nParams, as llama.cpp prints it. */
  bitsPerWeight: number;
  perplexity?: PerplexityResult;
  /** Against the base model, when there is one and a text. */
  divergence?: BaseDivergence;
  /** With options.draft: nGen greedy tokens with the draft against without it. */
  speculative?: SpeculativeSpeed;
}

export interface BenchReport {
  createdAt: string;
  system: { buildCommit: string; cpuInfo: string; backends: string[] };
  settings: {
    nPrompt: number;
    nGen: number;
    repetitions: number;
    nBatch: number;
    nUbatch: number;
    nThreads?: number;
    /** @deprecated The older name of nThreads (the same number). */
    threads?: number;
    text?: string;
    nCtx?: number;
  };
  /** The base first, then the other models by decreasing size. */
  models: BenchModelResult[];
}

/** model-f16.gguf and Q4_K_M give model-Q4_K_M.gguf: the base's precision suffix gives way to the type. */
export function quantizedName(basePath: string, type: QuantType): string {
  const stem = basename(basePath, extname(basePath)).replace(/[-_.](f32|f16|bf16)$/i, "");
  return `${stem}-${type}.gguf`;
}

/**
 * The file's quantization type: general.file_type, or, when the file does not say (llama.cpp then
 * guesses too), the type holding most of the matrix weights.
 */
async function fileTypeName(path: string): Promise<string> {
  const header = await readGgufHeader(path);
  const fileType = header.metadata["general.file_type"];
  if (typeof fileType === "number") return quantTypeName(fileType) ?? `ftype ${fileType}`;
  const elementsByType = new Map<string, number>();
  for (const tensor of header.tensors) {
    if (tensor.dims.length < 2) continue;
    const elements = tensor.dims.reduce((product, size) => product * size, 1);
    elementsByType.set(tensor.typeName, (elementsByType.get(tensor.typeName) ?? 0) + elements);
  }
  return [...elementsByType].sort((a, b) => b[1] - a[1])[0]?.[0] ?? "?";
}

function cpuDescription(): string {
  return devices().find((d) => d.type === "cpu")?.description ?? "unknown CPU";
}

/** Measures models; see BenchOptions. Results keep the order: base, then by decreasing file size. */
export async function bench(options: BenchOptions): Promise<BenchReport> {
  const checked = checkOptions<BenchOptions>("options", options, {
    models: (name, value) => {
      if (!Array.isArray(value)) throw new TypeError(`${name} must be an array of paths`);
      value.forEach((v, i) => expectString(`${name}[${i}]`, v));
    },
    base: string,
    types: (name, value) => {
      if (!Array.isArray(value)) throw new TypeError(`${name} must be an array of type names`);
      value.forEach((v, i) => parseQuantType(expectString(`${name}[${i}]`, v), `${name}[${i}]`));
    },
    quantDir: string,
    imatrix: string,
    text: string,
    nCtx: integer({ min: 8 }),
    nChunks: integer({ min: 1 }),
    draft: (name, value) => expectObject(name, value),
    ...speedOptionChecks,
    onProgress: func,
    signal,
  });
  const o = withAlias("options", checked, "nThreads", "threads");
  const types = (o.types ?? []).map((t) => parseQuantType(t));
  if (types.length > 0 && o.base === undefined) throw new TypeError("options.types needs options.base, the model to quantize");
  const paths: string[] = [];
  if (o.base !== undefined) paths.push(o.base);
  for (const type of types) {
    const target = join(o.quantDir ?? dirname(o.base!), quantizedName(o.base!, type));
    if (!existsSync(target)) {
      await quantize(o.base!, target, {
        type,
        nThreads: o.nThreads ?? 0,
        imatrix: o.imatrix,
        signal: o.signal,
        onProgress: (fraction) => o.onProgress?.({ phase: "quantize", model: target, type, fraction }),
      });
    }
    paths.push(target);
  }
  paths.push(...(o.models ?? []));
  if (paths.length === 0) throw new TypeError("nothing to measure: give options.models, or options.base (with options.types)");
  const unique = [...new Set(paths)];
  for (const path of unique) {
    if (!existsSync(path)) throw new LlamaError("MODEL_NOT_FOUND", `model file not found: ${path}`);
  }

  const speedOptions = {
    nPrompt: o.nPrompt ?? 512,
    nGen: o.nGen ?? 128,
    repetitions: o.repetitions ?? 5,
    nBatch: o.nBatch ?? 2048,
    nUbatch: o.nUbatch ?? 512,
    nThreads: o.nThreads,
  };
  const results: BenchModelResult[] = [];
  for (const path of unique) {
    const speed = await measureSpeed(path, speedOptions, {
      signal: o.signal,
      onProgress: (progress) => o.onProgress?.({ phase: "speed", model: path, progress }),
    });
    results.push({
      ...speed,
      path,
      type: await fileTypeName(path),
      isBase: path === o.base,
      fileSize: (await stat(path)).size,
      bitsPerWeight: (speed.modelSize * 8) / speed.nParams,
    });
    if (o.draft !== undefined) {
      o.onProgress?.({ phase: "speculative", model: path });
      results.at(-1)!.speculative = await measureSpeculative(path, { draft: o.draft, nGen: speedOptions.nGen, repetitions: speedOptions.repetitions, nThreads: o.nThreads, signal: o.signal });
    }
  }

  if (o.text !== undefined) {
    const text = await readFile(o.text, "utf8");
    const quality = { nCtx: o.nCtx, nChunks: o.nChunks, nThreads: o.nThreads, signal: o.signal };
    const base = results.find((r) => r.isBase);
    for (const result of results) {
      const onProgress = (chunksDone: number, chunksTotal: number) =>
        o.onProgress?.({ phase: "quality", model: result.path, chunksDone, chunksTotal });
      if (base === undefined || result.isBase) {
        // With others to compare, the base's perplexity comes out of the first comparison.
        if (result.isBase && results.length > 1) continue;
        result.perplexity = await perplexity(result.path, text, { ...quality, onProgress });
        continue;
      }
      const { base: baseFigures, candidate, ...divergence } = await compareModels(base.path, result.path, text, { ...quality, onProgress });
      base.perplexity ??= baseFigures;
      result.perplexity = candidate;
      result.divergence = divergence;
    }
  }

  const ordered = [...results.filter((r) => r.isBase), ...results.filter((r) => !r.isBase).sort((a, b) => b.fileSize - a.fileSize)];
  const info = buildInfo();
  return {
    createdAt: new Date().toISOString(),
    system: { buildCommit: info.llamaCommit, cpuInfo: cpuDescription(), backends: info.backends },
    settings: {
      nPrompt: speedOptions.nPrompt,
      nGen: speedOptions.nGen,
      repetitions: speedOptions.repetitions,
      nBatch: speedOptions.nBatch,
      nUbatch: speedOptions.nUbatch,
      nThreads: o.nThreads,
      threads: o.nThreads,
      text: o.text,
      nCtx: o.text === undefined ? undefined : (o.nCtx ?? 512),
    },
    models: ordered,
  };
}
