import { stat } from "node:fs/promises";
import { LlamaError } from "../errors.js";
import { GGML_TYPES } from "../gguf/types.js";
import { readImatrix, type ImportanceMatrix } from "./imatrix.js";
import { quantizeModelFile } from "../core/quantize.js";
import { boolean, checkOptions, expectString, func, integer, signal, withAlias } from "../validate.js";

/**
 * The quantization types llama-quantize offers (its names, llama_ftype values and descriptions,
 * from tools/quantize/quantize.cpp). Q3_K, Q4_K and Q5_K are its aliases of the _M mixes; COPY
 * copies the tensors unchanged.
 */
const QUANT_TABLE = {
  Q1_0: [40, "1.125 bpw quantization"],
  Q2_0: [41, "2.25 bpw quantization (group 64)"],
  Q4_0: [2, "4.34G, +0.4685 ppl @ Llama-3-8B"],
  Q4_1: [3, "4.78G, +0.4511 ppl @ Llama-3-8B"],
  MXFP4_MOE: [38, "MXFP4 MoE"],
  Q5_0: [8, "5.21G, +0.1316 ppl @ Llama-3-8B"],
  Q5_1: [9, "5.65G, +0.1062 ppl @ Llama-3-8B"],
  IQ2_XXS: [19, "2.06 bpw quantization"],
  IQ2_XS: [20, "2.31 bpw quantization"],
  IQ2_S: [28, "2.5 bpw quantization"],
  IQ2_M: [29, "2.7 bpw quantization"],
  IQ1_S: [24, "1.56 bpw quantization"],
  IQ1_M: [31, "1.75 bpw quantization"],
  TQ1_0: [36, "1.69 bpw ternarization"],
  TQ2_0: [37, "2.06 bpw ternarization"],
  Q2_K: [10, "2.96G, +3.5199 ppl @ Llama-3-8B"],
  Q2_K_S: [21, "2.96G, +3.1836 ppl @ Llama-3-8B"],
  IQ3_XXS: [23, "3.06 bpw quantization"],
  IQ3_S: [26, "3.44 bpw quantization"],
  IQ3_M: [27, "3.66 bpw quantization mix"],
  Q3_K: [12, "alias for Q3_K_M"],
  IQ3_XS: [22, "3.3 bpw quantization"],
  Q3_K_S: [11, "3.41G, +1.6321 ppl @ Llama-3-8B"],
  Q3_K_M: [12, "3.74G, +0.6569 ppl @ Llama-3-8B"],
  Q3_K_L: [13, "4.03G, +0.5562 ppl @ Llama-3-8B"],
  IQ4_NL: [25, "4.50 bpw non-linear quantization"],
  IQ4_XS: [30, "4.25 bpw non-linear quantization"],
  Q4_K: [15, "alias for Q4_K_M"],
  Q4_K_S: [14, "4.37G, +0.2689 ppl @ Llama-3-8B"],
  Q4_K_M: [15, "4.58G, +0.1754 ppl @ Llama-3-8B"],
  Q5_K: [17, "alias for Q5_K_M"],
  Q5_K_S: [16, "5.21G, +0.1049 ppl @ Llama-3-8B"],
  Q5_K_M: [17, "5.33G, +0.0569 ppl @ Llama-3-8B"],
  Q6_K: [18, "6.14G, +0.0217 ppl @ Llama-3-8B"],
  Q8_0: [7, "7.96G, +0.0026 ppl @ Llama-3-8B"],
  F16: [1, "14.00G, +0.0020 ppl @ Mistral-7B"],
  BF16: [32, "14.00G, -0.0050 ppl @ Mistral-7B"],
  F32: [0, "26.00G @ 7B"],
  COPY: [0, "only copy tensors, no quantizing"],
} as const satisfies Record<string, readonly [number, string]>;

export type QuantType = keyof typeof QUANT_TABLE;

/** Each type's llama_ftype value. */
export const QUANT_TYPES: Readonly<Record<QuantType, number>> = Object.freeze(
  Object.fromEntries(Object.entries(QUANT_TABLE).map(([name, [ftype]]) => [name, ftype])) as Record<QuantType, number>,
);

/**
 * Types that llama.cpp refuses to make without an importance matrix: they put IQ1/IQ2/IQ3_XXS
 * tensors (or, in Q2_K_S, Q2_K tensors) in the file. Tensors too narrow for their 256-wide blocks
 * fall back to other types, so a tiny model may still quantize without one.
 */
export const IMATRIX_TYPES: ReadonlySet<QuantType> = new Set<QuantType>([
  "IQ1_S",
  "IQ1_M",
  "IQ2_XXS",
  "IQ2_XS",
  "IQ2_S",
  "IQ2_M",
  "IQ3_XXS",
  "IQ3_XS",
  "Q2_K_S",
]);

export interface QuantTypeInfo {
  name: QuantType;
  /** llama_ftype value written as general.file_type. */
  ftype: number;
  /** llama-quantize's description: size and perplexity change on a reference model, or bits per weight. */
  description: string;
  needsImatrix: boolean;
}

/** Every quantization type, in llama-quantize's order. */
export function quantTypes(): QuantTypeInfo[] {
  return Object.entries(QUANT_TABLE).map(([name, [ftype, description]]) => ({
    name: name as QuantType,
    ftype,
    description,
    needsImatrix: IMATRIX_TYPES.has(name as QuantType),
  }));
}

/** The type name of a llama_ftype value (the _M mix rather than its alias), or undefined. */
export function quantTypeName(ftype: number): QuantType | undefined {
  const found = Object.entries(QUANT_TABLE).find(([, [value, description]]) => value === ftype && !description.startsWith("alias"));
  return found?.[0] as QuantType | undefined;
}

/** Resolves a type name case-insensitively ("q4_k_m" is Q4_K_M), or throws a RangeError listing the valid names. */
export function parseQuantType(name: string, what = "type"): QuantType {
  const canonical = Object.keys(QUANT_TABLE).find((known) => known === name.toUpperCase());
  if (canonical === undefined) {
    throw new RangeError(`${what} must be one of ${Object.keys(QUANT_TABLE).join(", ")}; got ${JSON.stringify(name)}`);
  }
  return canonical as QuantType;
}

function ggmlTypeId(what: string, name: string): number {
  const info = GGML_TYPES.find((t) => t.name === name.toUpperCase());
  if (info === undefined) {
    throw new RangeError(`${what} must be a ggml type (${GGML_TYPES.map((t) => t.name).join(", ")}); got ${JSON.stringify(name)}`);
  }
  return info.id;
}

export interface QuantizeOptions {
  /** The target type, by llama-quantize's name (case-insensitive). */
  type: QuantType | string;
  /** Threads (0: all cores). Default 0. */
  nThreads?: number;
  /** @deprecated The older name of nThreads (still accepted). */
  threads?: number;
  /** Allow quantizing tensors that are already quantized. Default false. */
  allowRequantize?: boolean;
  /** Keep output.weight unquantized. Default false. */
  leaveOutputTensor?: boolean;
  /** The ggml type of output.weight, e.g. "Q8_0" (overrides the type's choice). */
  outputTensorType?: string;
  /** The ggml type of token_embd.weight. */
  tokenEmbeddingType?: string;
  /** Quantize every tensor to `type` (no per-tensor mixes). Default false. */
  pure?: boolean;
  /** An importance matrix: a file from llama-imatrix (GGUF or .dat) or one read with readImatrix(). */
  imatrix?: string | ImportanceMatrix;
  /** Called with the fraction of tensors done, 0 to 1, on the main thread; ends on 1. */
  onProgress?: (fraction: number) => void;
  /** Aborts between two tensors; the partial output is removed. */
  signal?: AbortSignal;
}

/** llama-quantize's record of the importance matrix, written into the output's metadata. */
function imatrixMetadata(source: string, imatrix: ImportanceMatrix): { keys: string[]; values: Array<string | number> } {
  const keys = ["quantize.imatrix.file", "quantize.imatrix.entries_count"];
  const values: Array<string | number> = [source, imatrix.entries.size];
  if (imatrix.datasets.length > 0) {
    keys.push("quantize.imatrix.dataset");
    values.push(imatrix.datasets[0]!);
  }
  if (imatrix.chunkCount > 0) {
    keys.push("quantize.imatrix.chunks_count");
    values.push(imatrix.chunkCount);
  }
  return { keys, values };
}

/** Quantizes a GGUF model with llama.cpp's quantizer, off the event loop. */
export async function quantize(input: string, output: string, options: QuantizeOptions): Promise<void> {
  expectString("input", input);
  expectString("output", output);
  const checked = checkOptions<QuantizeOptions>("options", options, {
    type: (name, value) => parseQuantType(expectString(name, value), name),
    nThreads: integer({ min: 0, max: 1024 }),
    threads: integer({ min: 0, max: 1024 }),
    allowRequantize: boolean,
    leaveOutputTensor: boolean,
    outputTensorType: (name, value) => ggmlTypeId(name, expectString(name, value)),
    tokenEmbeddingType: (name, value) => ggmlTypeId(name, expectString(name, value)),
    pure: boolean,
    imatrix: (name, value) => {
      if (typeof value !== "string" && !(typeof value === "object" && value !== null && (value as ImportanceMatrix).entries instanceof Map)) {
        throw new TypeError(`${name} must be a file path or an ImportanceMatrix`);
      }
    },
    onProgress: func,
    signal,
  });
  const o = withAlias("options", checked, "nThreads", "threads");
  if (o.type === undefined) throw new TypeError(`options.type is required: one of ${Object.keys(QUANT_TABLE).join(", ")}`);
  const type = parseQuantType(o.type, "options.type");
  try {
    await stat(input);
  } catch (err) {
    throw new LlamaError("MODEL_NOT_FOUND", `model file not found: ${input}`, { cause: err });
  }
  const imatrix = typeof o.imatrix === "string" ? await readImatrix(o.imatrix) : o.imatrix;
  try {
    await quantizeModelFile(
      input,
      output,
      {
        ftype: QUANT_TYPES[type],
        nThreads: o.nThreads ?? 0,
        allowRequantize: o.allowRequantize ?? false,
        leaveOutputTensor: o.leaveOutputTensor ?? false,
        pure: o.pure ?? false,
        onlyCopy: type === "COPY",
        outputTensorType: o.outputTensorType === undefined ? undefined : ggmlTypeId("outputTensorType", o.outputTensorType),
        tokenEmbeddingType: o.tokenEmbeddingType === undefined ? undefined : ggmlTypeId("tokenEmbeddingType", o.tokenEmbeddingType),
        imatrix: imatrix && { names: [...imatrix.entries.keys()], values: [...imatrix.entries.values()] },
        metadata: imatrix && imatrixMetadata(typeof o.imatrix === "string" ? o.imatrix : "(in memory)", imatrix),
      },
      o.onProgress,
      o.signal,
    );
  } catch (err) {
    if (err instanceof LlamaError && err.code === "QUANTIZE_FAILED" && err.message.includes("requires an importance matrix")) {
      // llama.cpp's banner names the first tensor that needs one.
      const tensor = /offending tensor: ([^;\s]+)/.exec(err.message)?.[1];
      const target = /target type: ([^;\s]+)/.exec(err.message)?.[1];
      const detail = tensor && target ? ` (${tensor} would be ${target})` : "";
      throw new LlamaError("QUANTIZE_FAILED", `${type} needs an importance matrix: pass options.imatrix, a file made by llama-imatrix${detail}`);
    }
    throw err;
  }
}
