import { LlamaError, fromNativeError } from "../errors.js";
import { native } from "./binding.js";
import type { NativeAbortFlag } from "./native.js";

/**
 * Runs a native operation with an AbortSignal mirrored into the addon's atomic abort flag, which
 * llama.cpp's abort and progress callbacks read. Native errors come back as LlamaError.
 */
export async function withAbort<T>(
  signal: AbortSignal | undefined,
  what: string,
  run: (flag: NativeAbortFlag | undefined) => Promise<T>,
): Promise<T> {
  if (signal?.aborted) throw new LlamaError("ABORTED", `${what} aborted`, { cause: signal.reason });
  if (signal === undefined) {
    try {
      return await run(undefined);
    } catch (err) {
      throw fromNativeError(err);
    }
  }
  const flag = new native.AbortFlag();
  const onAbort = () => flag.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    return await run(flag);
  } catch (err) {
    throw fromNativeError(err);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** Calls a synchronous native method, turning its coded errors into LlamaError. */
export function callNative<T>(run: () => T): T {
  try {
    return run();
  } catch (err) {
    throw fromNativeError(err);
  }
}

/**
 * Progress of a native operation, reported from its thread through the event loop and so possibly
 * after the operation settled: `report` drops late and repeated values, and `settle` ends a
 * successful operation on 1.
 */
export function progressReporter(onProgress: ((fraction: number) => void) | undefined): {
  report: ((fraction: number) => void) | undefined;
  settle(succeeded: boolean): void;
} {
  let settled = false;
  let last = -1;
  return {
    report:
      onProgress &&
      ((fraction: number) => {
        if (settled || fraction <= last) return;
        last = fraction;
        onProgress(fraction);
      }),
    settle(succeeded) {
      if (settled) return;
      settled = true;
      if (succeeded && onProgress && last < 1) onProgress(1);
    },
  };
}
