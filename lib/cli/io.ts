// The streams a command talks to (the process's, or test doubles), the load progress bar, and the
// one place the CLI loads the addon: lazily, so that --help and inspect never do.
import { readFile } from "node:fs/promises";
import type { Llama, LlamaLoadOptions } from "../completion/llama.js";
import type { DownloadProgress } from "../hub/download.js";

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

/** A one-line bar on a TTY stderr, with a detail after it; nothing elsewhere, so that pipes and logs stay clean. */
export function progressBar(out: CliOutput | null, label: string): { update(fraction: number, detail?: string): void; clear(): void } {
  if (!out?.isTTY) return { update() {}, clear() {} };
  let shown = "";
  const width = Math.max(10, Math.min(40, (out.columns ?? 80) - label.length - 12));
  return {
    update(fraction, detail = "") {
      const percent = Math.floor(Math.min(1, Math.max(0, fraction)) * 100);
      const filled = Math.round((percent / 100) * width);
      const line = `\r${label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${String(percent).padStart(3)}%${detail ? ` ${detail}` : ""}`;
      if (line === shown) return;
      out.write(`${line}\x1b[K`);
      shown = line;
    },
    clear() {
      if (shown) out.write("\r\x1b[2K");
      shown = "";
    },
  };
}

/** Bytes in binary units: "512 B", "1.50 MiB". */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(2)} ${units[unit]}`;
}

/** Seconds as "1h02m", "3m05s" or "12s"; "?" when unknown. */
function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

/** Downloads on stderr: a bar with bytes, rate and time left on a terminal; a line per tenth otherwise. */
export class DownloadProgressView {
  readonly #out: CliOutput;
  #file = "";
  #since = 0;
  #from = 0;
  #tenth = -1;
  #bar: ReturnType<typeof progressBar> | null = null;

  constructor(out: CliOutput) {
    this.#out = out;
  }

  update({ file, downloaded, total }: DownloadProgress): void {
    if (file !== this.#file) {
      this.finish();
      [this.#file, this.#since, this.#from, this.#tenth] = [file, Date.now(), downloaded, -1];
      this.#bar = progressBar(this.#out, file.split("/").pop() ?? file);
    }
    const rate = (downloaded - this.#from) / Math.max(1e-3, (Date.now() - this.#since) / 1000);
    const left = rate > 0 && total > 0 ? (total - downloaded) / rate : NaN;
    const detail = `${formatBytes(downloaded)} / ${total > 0 ? formatBytes(total) : "?"}, ${formatBytes(Math.round(rate))}/s, ${formatDuration(left)} left`;
    if (this.#out.isTTY) return this.#bar?.update(total > 0 ? downloaded / total : 0, detail);
    const tenth = total > 0 ? Math.floor((downloaded / total) * 10) : 0;
    if (tenth > this.#tenth) this.#out.write(`${file}: ${tenth * 10}%, ${detail}\n`);
    this.#tenth = Math.max(tenth, this.#tenth);
  }

  /** Ends the bar being drawn, if any. */
  finish(): void {
    this.#bar?.clear();
    this.#bar = null;
    this.#file = "";
  }
}

/** Loads the model with a progress bar (unless llama.cpp's own log is on), and one for a model downloaded first. */
export async function loadLlama(io: CliIo, options: LlamaLoadOptions): Promise<Llama> {
  const { Llama } = await import("../completion/llama.js");
  const name = options.modelPath.split(/[\\/:]/).pop() ?? options.modelPath;
  const bar = progressBar(options.verbose ? null : io.stderr, `Loading ${name}`);
  const download = new DownloadProgressView(io.stderr);
  try {
    return await Llama.load({ ...options, onProgress: (p) => bar.update(p), onDownloadProgress: (p) => download.update(p) });
  } finally {
    download.finish();
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
