/**
 * Importance matrices (llama-imatrix's output) for quantize(): the GGUF format and the legacy .dat
 * format, normalised exactly as llama-quantize does before it hands them to llama.cpp.
 */
import { open, readFile } from "node:fs/promises";
import { LlamaError } from "../errors.js";
import { readGgufHeader } from "../gguf/reader.js";
import { GgmlType, type GgufTensorInfo, type GgufValue } from "../gguf/types.js";

export interface ImportanceMatrix {
  /** Mean squared activation of each input column, by weight tensor name (e.g. "blk.0.attn_q.weight"). */
  entries: Map<string, Float32Array>;
  /** The texts it was computed on, as recorded in the file. */
  datasets: string[];
  /** Chunks of text it was computed on (0 when the file does not say). */
  chunkCount: number;
}

const IN_SUM2 = ".in_sum2";
const COUNTS = ".counts";

function malformed(path: string, why: string): LlamaError {
  return new LlamaError("INVALID_GGUF", `${path} is not a usable importance matrix: ${why}`);
}

async function readFloats(path: string, tensor: GgufTensorInfo): Promise<Float32Array> {
  if (tensor.type !== GgmlType.F32) throw malformed(path, `${tensor.name} must be F32, not ${tensor.typeName}`);
  const file = await open(path, "r");
  try {
    const bytes = Buffer.alloc(tensor.nBytes);
    const { bytesRead } = await file.read(bytes, 0, tensor.nBytes, tensor.offset);
    if (bytesRead !== tensor.nBytes) throw malformed(path, `${tensor.name} is cut short`);
    return new Float32Array(bytes.buffer, bytes.byteOffset, tensor.nBytes / 4).slice();
  } finally {
    await file.close();
  }
}

function stringList(value: GgufValue | undefined): string[] {
  if (typeof value !== "object" || value === null || !("items" in value)) return [];
  return value.items.filter((item): item is string => typeof item === "string");
}

async function readGgufImatrix(path: string): Promise<ImportanceMatrix> {
  const header = await readGgufHeader(path);
  const { metadata } = header;
  if (!("imatrix.datasets" in metadata) || !("imatrix.chunk_count" in metadata) || !("imatrix.chunk_size" in metadata)) {
    throw malformed(path, "the imatrix.* metadata is missing (llama-quantize refuses such files too)");
  }
  const byName = new Map(header.tensors.map((t) => [t.name, t]));
  const entries = new Map<string, Float32Array>();
  for (const tensor of header.tensors) {
    if (!tensor.name.endsWith(IN_SUM2)) continue;
    const name = tensor.name.slice(0, -IN_SUM2.length);
    const countsTensor = byName.get(name + COUNTS);
    if (countsTensor === undefined) throw malformed(path, `${name} has sums but no counts`);
    const sums = await readFloats(path, tensor);
    const counts = await readFloats(path, countsTensor);
    if (counts.length === 0 || sums.length % counts.length !== 0) throw malformed(path, `${name} has ${sums.length} sums for ${counts.length} counts`);
    // One count per expert (one for dense weights): sums become means; unseen experts weigh 1.
    const perCount = sums.length / counts.length;
    const values = new Float32Array(sums.length);
    for (let j = 0; j < counts.length; j++) {
      const count = Math.round(counts[j]!);
      for (let i = j * perCount; i < (j + 1) * perCount; i++) values[i] = count > 0 ? sums[i]! / count : 1;
    }
    entries.set(name, values);
  }
  if (entries.size === 0) throw malformed(path, "it holds no entries");
  return { entries, datasets: stringList(metadata["imatrix.datasets"]), chunkCount: Number(metadata["imatrix.chunk_count"]) };
}

/** The legacy format: int32 count, then per entry name, call count and float sums; an optional trailer. */
function parseLegacyImatrix(path: string, bytes: Buffer): ImportanceMatrix {
  let offset = 0;
  const int32 = (): number => {
    if (offset + 4 > bytes.length) throw malformed(path, "the file is cut short");
    const value = bytes.readInt32LE(offset);
    offset += 4;
    return value;
  };
  const text = (length: number): string => {
    if (length < 0 || offset + length > bytes.length) throw malformed(path, "the file is cut short");
    const value = bytes.toString("utf8", offset, offset + length);
    offset += length;
    return value;
  };
  const nEntries = int32();
  if (nEntries < 1) throw malformed(path, "it holds no entries");
  const entries = new Map<string, Float32Array>();
  for (let e = 0; e < nEntries; e++) {
    const name = text(int32());
    const nCalls = int32();
    const nValues = int32();
    if (nValues < 1 || offset + nValues * 4 > bytes.length) throw malformed(path, `entry ${name} is cut short`);
    const values = new Float32Array(nValues);
    for (let i = 0; i < nValues; i++) values[i] = bytes.readFloatLE(offset + i * 4);
    offset += nValues * 4;
    // Legacy sums are means times the call count.
    if (nCalls > 0) for (let i = 0; i < nValues; i++) values[i] = values[i]! / nCalls;
    entries.set(name, values);
  }
  let chunkCount = 0;
  const datasets: string[] = [];
  if (offset + 4 <= bytes.length) {
    chunkCount = int32();
    if (offset + 4 <= bytes.length) {
      const length = int32();
      if (length > 0) datasets.push(text(length));
    }
  }
  return { entries, datasets, chunkCount };
}

/** Reads an importance matrix written by llama-imatrix (GGUF, or the legacy .dat format). */
export async function readImatrix(path: string): Promise<ImportanceMatrix> {
  const file = await open(path, "r").catch((err: unknown) => {
    throw new LlamaError("MODEL_NOT_FOUND", `importance matrix not found: ${path}`, { cause: err });
  });
  let magic: string;
  try {
    const head = Buffer.alloc(4);
    await file.read(head, 0, 4, 0);
    magic = head.toString("latin1");
  } finally {
    await file.close();
  }
  if (magic === "GGUF") return readGgufImatrix(path);
  return parseLegacyImatrix(path, await readFile(path));
}
