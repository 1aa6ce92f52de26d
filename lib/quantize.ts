import { withAbort } from "./abort.js";
import { LlamaError } from "./errors.js";
import { native } from "./native.js";
import { boolean, checkOptions, expectString, integer } from "./validate.js";
import { stat } from "node:fs/promises";

/** llama.cpp's quantization types (llama_ftype), by llama-quantize's names. */
export const QUANT_TYPES = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q8_0: 7,
  Q5_0: 8,
  Q5_1: 9,
  Q2_K: 10,
  Q3_K_S: 11,
  Q3_K_M: 12,
  Q3_K_L: 13,
  Q4_K_S: 14,
  Q4_K_M: 15,
  Q5_K_S: 16,
  Q5_K_M: 17,
  Q6_K: 18,
  IQ2_XXS: 19,
  IQ2_XS: 20,
  Q2_K_S: 21,
  IQ3_XS: 22,
  IQ3_XXS: 23,
  IQ1_S: 24,
  IQ4_NL: 25,
  IQ3_S: 26,
  IQ3_M: 27,
  IQ2_S: 28,
  IQ2_M: 29,
  IQ4_XS: 30,
  IQ1_M: 31,
  BF16: 32,
  TQ1_0: 36,
  TQ2_0: 37,
  MXFP4_MOE: 38,
  NVFP4: 39,
  Q1_0: 40,
  Q2_0: 41,
} as const;

export type QuantType = keyof typeof QUANT_TYPES;

/** Types whose quality depends on an importance matrix; llama.cpp refuses some without one. */
export const IMATRIX_TYPES: ReadonlySet<QuantType> = new Set<QuantType>([
  "IQ2_XXS",
  "IQ2_XS",
  "IQ2_S",
  "IQ2_M",
  "IQ1_S",
  "IQ1_M",
  "Q2_K_S",
]);

export interface QuantizeOptions {
  type: QuantType;
  /** Threads (0: all cores). Default 0. */
  threads?: number;
  /** Allow quantizing tensors that are already quantized. Default false. */
  allowRequantize?: boolean;
  /** Keep output.weight unquantized. Default false. */
  leaveOutputTensor?: boolean;
  /** Quantize every tensor to `type` (no per-tensor mixes). Default false. */
  pure?: boolean;
  signal?: AbortSignal;
}

/** Quantizes a GGUF model with llama.cpp's quantizer, off the event loop. */
export async function quantize(input: string, output: string, options: QuantizeOptions): Promise<void> {
  expectString("input", input);
  expectString("output", output);
  const o = checkOptions<QuantizeOptions>("options", options, {
    type: (name, value) => {
      if (typeof value !== "string" || !(value in QUANT_TYPES)) {
        throw new RangeError(`${name} must be one of ${Object.keys(QUANT_TYPES).join(", ")}; got ${String(value)}`);
      }
    },
    threads: integer({ min: 0, max: 1024 }),
    allowRequantize: boolean,
    leaveOutputTensor: boolean,
    pure: boolean,
    signal: (name, value) => {
      if (!(value instanceof AbortSignal)) throw new TypeError(`${name} must be an AbortSignal`);
    },
  });
  if (o.type === undefined) throw new TypeError(`options.type is required: one of ${Object.keys(QUANT_TYPES).join(", ")}`);
  try {
    await stat(input);
  } catch (err) {
    throw new LlamaError("MODEL_NOT_FOUND", `model file not found: ${input}`, { cause: err });
  }
  await withAbort(o.signal, "quantization", () =>
    native.quantize(input, output, {
      ftype: QUANT_TYPES[o.type],
      nThreads: o.threads ?? 0,
      allowRequantize: o.allowRequantize ?? false,
      leaveOutputTensor: o.leaveOutputTensor ?? false,
      pure: o.pure ?? false,
    }),
  );
}
