// The streams a command talks to (the process's, or test doubles), the load progress bar, and the
// one place the CLI loads the addon: lazily, so that --help and inspect never do.
import { readFile } from "node:fs/promises";
import type { Llama, LlamaLoadOptions } from "../completion/llama.js";

export interface CliInput extends NodeJS.ReadableStream {
  isTTY?: boolean;
}

export interface CliOutput extends NodeJS.WritableStream {
  isTTY?: boolean;
  columns?: number;
}

export interface CliIo {
  stdin: CliInput;
  stdout: CliOutput;
  stderr: CliOutput;
}

export const processIo: CliIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };

/** A one-line bar on a TTY stderr; nothing elsewhere, so that pipes and logs stay clean. */
export function progressBar(out: CliOutput | null, label: string): { update(fraction: number): void; clear(): void } {
  if (!out?.isTTY) return { update() {}, clear() {} };
  let shown = -1;
  const width = Math.max(10, Math.min(40, (out.columns ?? 80) - label.length - 12));
  return {
    update(fraction) {
      const percent = Math.floor(Math.min(1, Math.max(0, fraction)) * 100);
      if (percent === shown) return;
      shown = percent;
      const filled = Math.round((percent / 100) * width);
      out.write(`\r${label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${String(percent).padStart(3)}%`);
    },
    clear() {
      if (shown >= 0) out.write("\r\x1b[2K");
    },
  };
}

/** Loads the model with a progress bar (unless llama.cpp's own log is on). */
export async function loadLlama(io: CliIo, options: LlamaLoadOptions): Promise<Llama> {
  const { Llama } = await import("../completion/llama.js");
  const name = options.modelPath.split(/[\\/]/).pop() ?? options.modelPath;
  const bar = progressBar(options.verbose ? null : io.stderr, `Loading ${name}`);
  try {
    return await Llama.load({ ...options, onProgress: (p) => bar.update(p) });
  } finally {
    bar.clear();
  }
}

export async function readAll(stream: CliInput): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString("utf8");
}

export function readTextFile(path: string): Promise<string> {
  return readFile(path, "utf8");
}
