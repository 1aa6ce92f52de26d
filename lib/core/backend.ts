// Process-wide facts and settings: llama.cpp's log, system info, build info, devices.
import { availableParallelism } from "node:os";
import { expectFunction } from "../validate.js";
import { loadedBinary, native } from "./binding.js";
import type { NativeBuildInfo, NativeDevice } from "./native.js";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type Logger = (level: LogLevel, text: string) => void;

const levelNames: Record<number, LogLevel> = { 1: "debug", 2: "info", 3: "warn", 4: "error" };
const levelNumbers: Record<LogLevel, number> = { debug: 1, info: 2, warn: 3, error: 4 };

// What setLogger chose, and how many verbose Llamas hold the log on stderr over it.
let chosenLogger: { logger: Logger; min: number } | null = null;
let verboseHolds = 0;

function applyLogger(): void {
  if (verboseHolds > 0) native.setLogger((_level, text) => process.stderr.write(text), levelNumbers.info);
  else if (chosenLogger === null) native.setLogger(null);
  else {
    const { logger, min } = chosenLogger;
    native.setLogger((level, text) => logger(levelNames[level] ?? "info", text), min);
  }
}

/**
 * Routes llama.cpp's and ggml's log (process-wide) to `logger` (called on the main thread, in
 * pieces as llama.cpp prints them), or silences it with `null`, the default. While a Llama loaded
 * with `verbose: true` lives, the log goes to stderr instead.
 */
export function setLogger(logger: Logger | null, minLevel: LogLevel = "info"): void {
  if (logger === null) {
    chosenLogger = null;
  } else {
    const callback = expectFunction<Logger>("logger", logger);
    const min = levelNumbers[minLevel];
    if (min === undefined) throw new RangeError(`minLevel must be one of debug, info, warn, error, got ${String(minLevel)}`);
    chosenLogger = { logger: callback, min };
  }
  applyLogger();
}

/** Sends the log to stderr until the returned release is called (once per hold; again does nothing). */
export function holdVerboseLog(): () => void {
  verboseHolds++;
  applyLogger();
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    verboseHolds--;
    applyLogger();
  };
}

/** llama.cpp's system info line: the CPU features the loaded ggml backend uses. */
export function systemInfo(): string {
  return native.systemInfo();
}

export interface BuildInfo extends NativeBuildInfo {
  /** The addon file in use. */
  binaryPath: string;
  /** Which binary that is: a GPU prebuild (`cuda`), the portable CPU prebuild (`cpu`), this machine's build (`source`), or LLAMA_NAPI_BINARY's (`custom`). */
  binaryKind: string;
  /** The GPUs ggml found, by description. */
  gpuDevices: string[];
}

/**
 * What the addon was built from and with and what it uses here: llama.cpp commit, compiler,
 * backends compiled in, the CPU variant chosen for this CPU, the GPUs found, the binary's path.
 */
export function buildInfo(): BuildInfo {
  const gpuDevices = native
    .devices()
    .filter((device) => device.type === "gpu" || device.type === "igpu")
    .map((device) => device.description);
  const { path, kind } = loadedBinary();
  return { ...native.buildInfo(), binaryPath: path, binaryKind: kind, gpuDevices };
}

/** The most sequences one context can hold (llama.cpp's LLAMA_MAX_SEQ). */
export function maxParallelSequences(): number {
  return native.buildInfo().maxParallelSequences;
}

/** The path of the loaded addon, for packages that build on it. */
export function binaryPath(): string {
  return loadedBinary().path;
}

/** The compute devices ggml found (CPU, GPUs). */
export function devices(): NativeDevice[] {
  return native.devices();
}

/**
 * The default thread count: every logical CPU on small machines (up to 4), half of them above that,
 * where they are usually hyper-threads of the same cores (llama-cpp-python halves always).
 */
export function defaultThreads(): number {
  const logical = availableParallelism();
  return logical <= 4 ? logical : Math.floor(logical / 2);
}
