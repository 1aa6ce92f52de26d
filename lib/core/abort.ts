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
