// llama.cpp's quantizer, run off the event loop (lib/tools/quantize.ts chooses its options).
import { progressReporter, withAbort } from "./abort.js";
import { native } from "./binding.js";
import type { NativeQuantizeOptions } from "./native.js";

export type { NativeQuantizeOptions } from "./native.js";

/** Writes `output`, a quantization of the GGUF model `input`; `onProgress` gets fractions up to 1. */
export async function quantizeModelFile(
  input: string,
  output: string,
  options: NativeQuantizeOptions,
  onProgress: ((fraction: number) => void) | undefined,
  signal: AbortSignal | undefined,
): Promise<void> {
  const progress = progressReporter(onProgress);
  let succeeded = false;
  try {
    await withAbort(signal, "quantization", (flag) => native.quantize(input, output, options, progress.report, flag));
    succeeded = true;
  } finally {
    progress.settle(succeeded);
  }
}
