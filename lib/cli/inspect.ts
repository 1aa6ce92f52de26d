// `llama-napi inspect`: what a GGUF file holds and what it would take to run, read by the
// TypeScript GGUF reader (no weights are read, the addon is never loaded; malformed files fail with
// the reader's message, naming the field and byte offset).
import { readGgufHeader } from "../gguf/reader.js";
import type { GgufArray, GgufHeader, GgufValue, GgufValueType } from "../gguf/types.js";
import { helpOption, UsageError, type CommandSpec, type Flags } from "./args.js";
import { formatBytes, type CliIo } from "./io.js";

export const inspectSpec: CommandSpec = {
  name: "inspect",
  usage: "inspect MODEL [options]",
  brief: "show a GGUF file's metadata, tensors and memory needs (no weights loaded)",
  summary:
    "Show a GGUF file's metadata, tensor types and sizes, and the memory it needs for a context,\n" +
    "without loading the weights.",
  groups: [
    {
      title: "Options",
      options: {
        model: { type: "string", short: "m", value: "FILE", help: "the GGUF file, if not given as MODEL" },
        "ctx-size": { type: "string", short: "c", value: "N", help: "context size per sequence for the estimate; 0: the model's (default 512)" },
        parallel: { type: "string", value: "N", help: "sequences sharing the context, as serve --parallel (default 1)" },
        "ubatch-size": { type: "string", value: "N", help: "physical batch size for the estimate (default 512)" },
        tensors: { type: "boolean", help: "list every tensor: name, type, shape, size" },
        full: { type: "boolean", help: "print long strings and arrays in full" },
        json: { type: "boolean", help: "print everything as JSON" },
        ...helpOption,
      },
    },
  ],
  maxPositionals: 1,
  notes:
    "The memory estimate is weights + KV cache (f16) + llama.cpp's compute buffers (approximate:\n" +
    "dominated by one batch of logits), for the CPU backend with flash attention.",
};

export interface MemoryEstimate {
  nCtx: number;
  nParallel: number;
  weightsBytes: number;
  /** null when the architecture's attention shape is unknown (e.g. recurrent models). */
  kvCacheBytes: number | null;
  computeBytes: number;
  totalBytes: number;
}

export interface ModelSummary {
  file: string;
  fileSize: number;
  version: number;
  architecture: string | null;
  name: string | null;
  parameters: number;
  contextLength: number | null;
  layers: number | null;
  embedding: number | null;
  heads: number | null;
  headsKv: number | null;
  feedForward: number | null;
  vocabulary: number | null;
  tensorTypes: Array<{ type: string; tensors: number; bytes: number }>;
  memory: MemoryEstimate;
}

function scalar(header: GgufHeader, key: string): number | null {
  const value = header.metadata[key];
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  return null;
}

function text(header: GgufHeader, key: string): string | null {
  const value = header.metadata[key];
  return typeof value === "string" ? value : null;
}

/** Per-layer values (head_count_kv and feed_forward_length may be arrays); null when absent. */
function perLayer(header: GgufHeader, key: string, layers: number): number[] | null {
  const value = header.metadata[key];
  if (typeof value === "number") return new Array<number>(layers).fill(value);
  if (typeof value === "object" && value !== null && typeof value !== "bigint") {
    return value.items.map((item) => Number(item));
  }
  return null;
}

export function summarize(file: string, header: GgufHeader, options: { nCtx: number; nParallel: number; nUbatch: number }): ModelSummary {
  const arch = text(header, "general.architecture");
  const key = (name: string) => `${arch}.${name}`;
  const layers = scalar(header, key("block_count"));
  const embedding = scalar(header, key("embedding_length"));
  const heads = perLayer(header, key("attention.head_count"), layers ?? 0);
  const headsKv = perLayer(header, key("attention.head_count_kv"), layers ?? 0) ?? heads;
  const tokens = header.metadata["tokenizer.ggml.tokens"];
  const vocabulary =
    typeof tokens === "object" && typeof tokens !== "bigint" ? tokens.items.length : scalar(header, key("vocab_size"));
  const contextLength = scalar(header, key("context_length"));

  const types = new Map<string, { tensors: number; bytes: number }>();
  let parameters = 0;
  let weightsBytes = 0;
  for (const tensor of header.tensors) {
    const entry = types.get(tensor.typeName) ?? { tensors: 0, bytes: 0 };
    entry.tensors++;
    entry.bytes += tensor.nBytes;
    types.set(tensor.typeName, entry);
    parameters += tensor.dims.reduce((a, b) => a * b, 1);
    weightsBytes += tensor.nBytes;
  }

  const nCtx = options.nCtx === 0 ? (contextLength ?? 512) : options.nCtx;
  const cells = nCtx * options.nParallel;
  let kvCacheBytes: number | null = null;
  if (layers !== null && embedding !== null && heads !== null && headsKv !== null && heads[0]) {
    const keyLength = scalar(header, key("attention.key_length")) ?? embedding / heads[0];
    const valueLength = scalar(header, key("attention.value_length")) ?? embedding / heads[0];
    const f16 = 2;
    kvCacheBytes = headsKv.slice(0, layers).reduce((sum, kv) => sum + cells * kv * (keyLength + valueLength) * f16, 0);
  }
  // llama.cpp reserves its graph for a full physical batch, whose logits dominate; plus the output rows.
  const ubatch = Math.min(options.nUbatch, cells);
  const computeBytes = 4 * ubatch * ((vocabulary ?? 0) + 2 * (embedding ?? 0)) + 4 * (vocabulary ?? 0) * options.nParallel;
  return {
    file,
    fileSize: header.fileSize,
    version: header.version,
    architecture: arch,
    name: text(header, "general.name"),
    parameters,
    contextLength,
    layers,
    embedding,
    heads: heads?.[0] ?? null,
    headsKv: headsKv?.[0] ?? null,
    feedForward: perLayer(header, key("feed_forward_length"), layers ?? 0)?.[0] ?? null,
    vocabulary,
    tensorTypes: [...types].map(([type, t]) => ({ type, ...t })).sort((a, b) => b.bytes - a.bytes),
    memory: {
      nCtx,
      nParallel: options.nParallel,
      weightsBytes,
      kvCacheBytes,
      computeBytes,
      totalBytes: weightsBytes + (kvCacheBytes ?? 0) + computeBytes,
    },
  };
}

function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

/** The shortest decimal that reads back as the same float32: 1e-5, not 0.000009999999747378752. */
function shortestFloat32(value: number): string {
  for (let digits = 1; digits < 9; digits++) {
    const shown = Number(value.toPrecision(digits));
    if (Math.fround(shown) === value) return String(shown);
  }
  return String(value);
}

/** A metadata value for people: long strings and big arrays shortened unless `full`. */
function formatValue(value: GgufValue, full: boolean, type: GgufValueType): string {
  if (typeof value === "string") {
    const shown = full || value.length <= 80 ? value : value.slice(0, 77) + "...";
    return JSON.stringify(shown) + (shown === value ? "" : ` (${value.length} characters)`);
  }
  if (typeof value === "object") {
    if (full || (value.items.length <= 8 && value.itemType !== "array")) {
      return `[${value.items.map((item) => formatValue(item, full, value.itemType)).join(", ")}]`;
    }
    return `[${value.itemType} x ${value.items.length}]`;
  }
  return type === "float32" ? shortestFloat32(value as number) : String(value);
}

/** A metadata value as JSON: bigints as strings, arrays shortened unless `full`. */
function jsonValue(value: GgufValue, full: boolean): unknown {
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "object") {
    const array = value as GgufArray;
    if (!full && array.items.length > 8) return { type: array.itemType, length: array.items.length };
    return array.items.map((item) => jsonValue(item, full));
  }
  return value;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => "  " + r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  "));
}

export async function inspectCommand(flags: Flags, io: CliIo): Promise<number> {
  if (flags.positionals.length > 0 && flags.has("model")) throw new UsageError("give MODEL or --model, not both");
  const file = flags.positionals[0] ?? flags.string("model");
  if (file === undefined) throw new UsageError("MODEL is required");
  const options = {
    nCtx: flags.int("ctx-size", { min: 0, max: 1 << 24 }) ?? 512,
    nParallel: flags.int("parallel", { min: 1, max: 256 }) ?? 1,
    nUbatch: flags.int("ubatch-size", { min: 1, max: 1 << 20 }) ?? 512,
  };
  const full = flags.bool("full");
  const header = await readGgufHeader(file);
  const summary = summarize(file, header, options);

  if (flags.bool("json")) {
    const out = {
      ...summary,
      alignment: header.alignment,
      metadata: Object.fromEntries(header.kvs.map((kv) => [kv.key, jsonValue(kv.value, full)])),
      tensors: flags.bool("tensors") ? header.tensors.map(({ name, typeName, dims, nBytes }) => ({ name, type: typeName, shape: dims, bytes: nBytes })) : undefined,
    };
    io.stdout.write(JSON.stringify(out, null, 2) + "\n");
    return 0;
  }

  const m = summary.memory;
  const lines = [
    `file          ${file} (${formatBytes(summary.fileSize)}, GGUF v${summary.version})`,
    `model         ${summary.architecture ?? "unknown architecture"}${summary.name ? `, ${JSON.stringify(summary.name)}` : ""}`,
    `parameters    ${formatCount(summary.parameters)} in ${header.tensors.length} tensors`,
    `shape         ${summary.layers ?? "?"} layers, embedding ${summary.embedding ?? "?"}, ${summary.heads ?? "?"} heads (${summary.headsKv ?? "?"} KV), feed-forward ${summary.feedForward ?? "?"}, vocabulary ${summary.vocabulary ?? "?"}`,
    `context       ${summary.contextLength ?? "?"} tokens (training)`,
    "",
    "tensor types",
    ...table(summary.tensorTypes.map((t) => [t.type, `${t.tensors} tensors`, formatBytes(t.bytes)])),
    "",
    `memory for ${m.nCtx} tokens x ${m.nParallel} sequence${m.nParallel === 1 ? "" : "s"}`,
    ...table([
      ["weights", formatBytes(m.weightsBytes)],
      ["KV cache", m.kvCacheBytes === null ? "unknown for this architecture" : `${formatBytes(m.kvCacheBytes)} (f16)`],
      ["compute", `~${formatBytes(m.computeBytes)} (estimate)`],
      ["total", `~${formatBytes(m.totalBytes)}`],
    ]),
    "",
    `metadata (${header.kvs.length} keys)`,
    ...header.kvs.map((kv) => `  ${kv.key} = ${formatValue(kv.value, full, kv.type)}`),
  ];
  if (flags.bool("tensors")) {
    lines.push("", "tensors");
    lines.push(...table(header.tensors.map((t) => [t.name, t.typeName, `[${t.dims.join(", ")}]`, formatBytes(t.nBytes)])));
  }
  io.stdout.write(lines.join("\n") + "\n");
  return 0;
}
