/**
 * GGUF header reader for untrusted files (no native code).
 *
 * Reads the key/value metadata and tensor table of a GGUF v2/v3 little-endian file through bounded,
 * buffered reads; tensor data is never read. Every count and length is checked against the bytes
 * left in the file and against caps, so a lying header fails fast instead of hanging or allocating
 * gigabytes. The checks mirror what ggml's gguf.cpp and llama.cpp's model loader enforce, so a file
 * accepted here is structurally acceptable to llama.cpp.
 */
import { constants as fsConstants } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { LlamaError } from "../errors.js";
import {
  GGUF_VALUE_TYPES,
  ggmlTypeInfo,
  type GgufArray,
  type GgufHeader,
  type GgufKv,
  type GgufValue,
  type GgufValueType,
} from "./types.js";
import { placeTensors, type PendingTensor } from "./layout.js";
import { FIXED_VALUE_BYTES, minValueBytes, readFixed, WindowReader } from "./window.js";

/** Caps that bound the work and memory a header may ask for. */
export interface GgufReadLimits {
  /** Largest string value, in bytes. */
  maxStringBytes: number;
  /** Total number of metadata values, counting every array element. */
  maxMetadataValues: number;
  maxKvCount: number;
  maxTensorCount: number;
  /** Deepest array-of-array nesting. */
  maxArrayDepth: number;
}

export const DEFAULT_GGUF_READ_LIMITS: Readonly<GgufReadLimits> = Object.freeze({
  // Chat templates and embedded tokenizer JSON stay well below this.
  maxStringBytes: 64 * 1024 * 1024,
  // Vocabularies hold well under a million tokens; tokens + scores + types + merges fit many times over.
  maxMetadataValues: 1 << 24,
  maxKvCount: 1 << 16,
  // Even MoE models with one tensor per expert stay far below this.
  maxTensorCount: 1 << 18,
  maxArrayDepth: 8,
});

export interface ReadGgufHeaderOptions {
  limits?: Partial<GgufReadLimits>;
  /**
   * Arrays with more elements than this are read through and checked like the rest, but come back
   * with no items (see GgufArray.skippedItems): a structural check of a model without decoding
   * its vocabulary. Default: keep every item.
   */
  arrayItemLimit?: number;
}

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
const GGUF_DEFAULT_ALIGNMENT = 32;
const GGML_MAX_DIMS = 4;
const GGML_MAX_NAME = 64;
const GGUF_MAX_KEY_BYTES = 65535; // the GGUF spec's key length limit
const INT64_MAX = (1n << 63n) - 1n;

function invalid(message: string): LlamaError {
  return new LlamaError("INVALID_GGUF", message);
}

/** Decodes the header of one GGUF file; `reader` is positioned at byte 0. */
class HeaderParser {
  private metadataValuesLeft: number;

  constructor(
    private readonly reader: WindowReader,
    private readonly limits: GgufReadLimits,
    private readonly arrayItemLimit: number,
  ) {
    this.metadataValuesLeft = limits.maxMetadataValues;
  }

  private async need(n: number, what: () => string): Promise<void> {
    if (this.reader.available < n) await this.reader.fill(n, what);
  }

  async parse(): Promise<GgufHeader> {
    const r = this.reader;
    await this.need(4, () => "the magic");
    const magic = r.u32();
    if (magic !== GGUF_MAGIC) {
      const text = Buffer.alloc(4);
      text.writeUInt32LE(magic);
      throw invalid(`bad magic at byte 0: ${JSON.stringify(text.toString("latin1"))}, expected "GGUF"`);
    }
    await this.need(4, () => "the version");
    const version = r.u32();
    if (version !== 2 && version !== 3) {
      const hint =
        version === 1
          ? " (GGUF v1 is no longer supported by llama.cpp)"
          : (version & 0xffff) === 0
            ? " (looks like a big-endian file; only little-endian is supported)"
            : "";
      throw invalid(`unsupported GGUF version ${version} at byte 4${hint}; expected 2 or 3`);
    }
    await this.need(16, () => "the tensor and key/value counts");
    const tensorCount = this.checkCount(r.i64(), 8, "tensor count", this.limits.maxTensorCount, 25);
    const kvCount = this.checkCount(r.i64(), 16, "key/value count", this.limits.maxKvCount, 14);

    const metadata: Record<string, GgufValue> = Object.create(null);
    const kvs: GgufKv[] = [];
    for (let i = 0; i < kvCount; i++) {
      const kv = await this.readKv(i, metadata);
      metadata[kv.key] = kv.value;
      kvs.push(kv);
    }

    const alignment = this.alignmentOf(kvs);
    const tensors: PendingTensor[] = [];
    const tensorNames = new Set<string>();
    for (let i = 0; i < tensorCount; i++) {
      const tensor = await this.readTensorInfo(i);
      if (tensorNames.has(tensor.name)) {
        throw invalid(`duplicate tensor name ${JSON.stringify(tensor.name)} (tensor #${i} at byte ${tensor.infoOffset})`);
      }
      tensorNames.add(tensor.name);
      tensors.push(tensor);
    }

    const headerEnd = r.offset;
    const dataOffset = tensorCount > 0 ? alignUp(headerEnd, alignment) : headerEnd;
    if (dataOffset > r.fileSize) {
      throw invalid(
        `file truncated: tensor data should start at byte ${dataOffset} (header ends at ${headerEnd}, ` +
          `alignment ${alignment}), but the file ends at byte ${r.fileSize}`,
      );
    }
    return {
      version,
      alignment,
      metadata,
      kvs,
      tensors: placeTensors(tensors, dataOffset, alignment, r.fileSize),
      dataOffset,
      fileSize: r.fileSize,
    };
  }

  // `minBytesEach` is the smallest encoding of one item, so counts the file cannot hold fail at once.
  private checkCount(count: bigint, at: number, what: string, cap: number, minBytesEach: number): number {
    if (count < 0n) throw invalid(`negative ${what} ${count} at byte ${at}`);
    if (count > BigInt(cap)) throw invalid(`${what} ${count} at byte ${at} exceeds the limit of ${cap}`);
    const n = Number(count);
    if (n * minBytesEach > this.reader.remainingInFile) {
      throw invalid(
        `${what} ${n} at byte ${at} cannot fit: it needs at least ${n * minBytesEach} bytes, ` +
          `${this.reader.remainingInFile} remain in the file`,
      );
    }
    return n;
  }

  private async readString(what: () => string, maxBytes: number): Promise<string> {
    const r = this.reader;
    const length = await this.readStringLength(what, maxBytes);
    if (r.available < length) await r.fill(length, what);
    return r.utf8(length);
  }

  /** Reads and checks a string's length prefix; the string's bytes follow. */
  private async readStringLength(what: () => string, maxBytes: number): Promise<number> {
    const r = this.reader;
    if (r.available < 8) await r.fill(8, () => `the length of ${what()}`);
    const at = r.offset;
    const length = r.u64Length();
    if (length < 0 || length > maxBytes) {
      const shown = length < 0 ? "2^53 or more" : String(length);
      throw invalid(`length ${shown} of ${what()} at byte ${at} exceeds the limit of ${maxBytes} bytes`);
    }
    if (length > r.remainingInFile) {
      throw invalid(
        `length ${length} of ${what()} at byte ${at} runs past the end of the file (${r.remainingInFile} bytes remain)`,
      );
    }
    return length;
  }

  private async readValueType(what: () => string): Promise<GgufValueType> {
    const r = this.reader;
    await this.need(4, what);
    const at = r.offset;
    const id = r.i32();
    const type = GGUF_VALUE_TYPES[id];
    if (type === undefined) throw invalid(`invalid value type ${id} for ${what()} at byte ${at}`);
    return type;
  }

  private async readKv(index: number, seen: Record<string, GgufValue>): Promise<GgufKv> {
    const keyAt = this.reader.offset;
    const key = await this.readString(() => `key #${index}`, GGUF_MAX_KEY_BYTES);
    if (key.length === 0) throw invalid(`key #${index} at byte ${keyAt} is empty`);
    if (key in seen) throw invalid(`duplicate key ${JSON.stringify(key)} (key #${index} at byte ${keyAt})`);
    const describe = () => `the value of ${JSON.stringify(key)}`;
    const type = await this.readValueType(describe);
    this.takeMetadataValue(describe);
    const value = await this.readValue(type, describe, 0);
    return { key, type, value };
  }

  private takeMetadataValue(what: () => string): void {
    if (this.metadataValuesLeft === 0) {
      throw invalid(
        `${what()} at byte ${this.reader.offset} exceeds the limit of ${this.limits.maxMetadataValues} metadata values`,
      );
    }
    this.metadataValuesLeft -= 1;
  }

  private async readValue(type: GgufValueType, what: () => string, depth: number): Promise<GgufValue> {
    const r = this.reader;
    switch (type) {
      case "string":
        return this.readString(what, this.limits.maxStringBytes);
      case "array":
        return this.readArray(what, depth + 1);
      default: {
        await this.need(FIXED_VALUE_BYTES[type]!, what);
        return readFixed(r, type);
      }
    }
  }

  private async readArray(what: () => string, depth: number): Promise<GgufArray> {
    const r = this.reader;
    if (depth > this.limits.maxArrayDepth) {
      throw invalid(`${what()} at byte ${r.offset} nests arrays deeper than ${this.limits.maxArrayDepth} levels`);
    }
    const itemType = await this.readValueType(() => `the element type of ${what()}`);
    await this.need(8, () => `the element count of ${what()}`);
    const countAt = r.offset;
    const count = r.u64Length();
    if (count < 0 || count > this.metadataValuesLeft) {
      const shown = count < 0 ? "2^53 or more" : String(count);
      throw invalid(
        `element count ${shown} of ${what()} at byte ${countAt} exceeds the limit of ` +
          `${this.limits.maxMetadataValues} metadata values`,
      );
    }
    const minBytes = count * minValueBytes(itemType);
    if (minBytes > r.remainingInFile) {
      throw invalid(
        `element count ${count} of ${what()} at byte ${countAt} cannot fit: ${count} ${itemType} values need ` +
          `at least ${minBytes} bytes, ${r.remainingInFile} remain in the file`,
      );
    }
    this.metadataValuesLeft -= count;

    const element = (i: number) => () => `${what()}[${i}]`;
    const fixedBytes = FIXED_VALUE_BYTES[itemType];
    if (count > this.arrayItemLimit && itemType !== "array") {
      // Checked as closely as a kept array (fixed-size elements fit: the count check above).
      if (fixedBytes !== undefined) r.skipAhead(count * fixedBytes);
      else {
        const maxBytes = this.limits.maxStringBytes;
        for (let i = 0; i < count; i++) {
          // Fast path for a length inside the window; readStringLength handles refills and errors.
          const length = r.available >= 8 ? r.peekU64Length() : -1;
          if (length >= 0 && length <= maxBytes && length <= r.remainingInFile - 8) {
            r.skip(8);
            r.skipAhead(length);
            continue;
          }
          r.skipAhead(await this.readStringLength(element(i), maxBytes));
        }
      }
      return { itemType, items: [], skippedItems: count };
    }
    const items: GgufValue[] = new Array(count);
    if (fixedBytes !== undefined) {
      for (let i = 0; i < count; i++) {
        if (r.available < fixedBytes) await r.fill(fixedBytes, element(i));
        items[i] = readFixed(r, itemType);
      }
    } else if (itemType === "string") {
      const maxBytes = this.limits.maxStringBytes;
      for (let i = 0; i < count; i++) {
        // Fast path for a string wholly inside the window; readString handles refills and errors.
        const length = r.available >= 8 ? r.peekU64Length() : -1;
        if (length >= 0 && length <= maxBytes && r.available >= 8 + length) {
          r.skip(8);
          items[i] = r.utf8(length);
          continue;
        }
        items[i] = await this.readString(element(i), maxBytes);
      }
    } else {
      for (let i = 0; i < count; i++) items[i] = await this.readArray(element(i), depth + 1);
    }
    return { itemType, items };
  }

  private alignmentOf(kvs: GgufKv[]): number {
    const entry = kvs.find((kv) => kv.key === "general.alignment");
    if (entry === undefined) return GGUF_DEFAULT_ALIGNMENT;
    if (entry.type !== "uint32") {
      throw invalid(`key "general.alignment" must be of type uint32 but is ${entry.type}`);
    }
    const alignment = entry.value as number;
    if (alignment === 0 || (alignment & (alignment - 1)) !== 0) {
      throw invalid(`general.alignment ${alignment} is not a power of 2`);
    }
    return alignment;
  }

  private async readTensorInfo(index: number): Promise<PendingTensor> {
    const r = this.reader;
    const infoOffset = r.offset;
    // ggml keeps names in a char[GGML_MAX_NAME] with a terminating NUL.
    const name = await this.readString(() => `the name of tensor #${index}`, GGML_MAX_NAME - 1);
    const label = `tensor ${JSON.stringify(name)} (#${index}, info at byte ${infoOffset})`;
    await this.need(4, () => `the dimension count of ${label}`);
    const dimCount = r.u32();
    if (dimCount > GGML_MAX_DIMS) throw invalid(`${label}: ${dimCount} dimensions, at most ${GGML_MAX_DIMS} allowed`);

    await this.need(dimCount * 8 + 4 + 8, () => `the shape, type and offset of ${label}`);
    const dims: number[] = [];
    let elementCount = 1n;
    for (let d = 0; d < dimCount; d++) {
      const size = r.i64();
      if (size < 0n) throw invalid(`${label}: dimension ${d} is negative (${size})`);
      if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`${label}: dimension ${d} is too large (${size})`);
      dims.push(Number(size));
      elementCount *= size;
    }
    // ggml requires the element count to stay below INT64_MAX.
    if (elementCount >= INT64_MAX) {
      throw invalid(`${label}: shape [${dims.join(", ")}] has 2^63 or more elements`);
    }

    const typeAt = r.offset;
    const type = r.i32();
    const info = ggmlTypeInfo(type);
    if (info === undefined) throw invalid(`${label}: unknown or removed ggml type ${type} at byte ${typeAt}`);
    const rowLength = dims[0] ?? 1;
    if (rowLength % info.blockSize !== 0) {
      throw invalid(
        `${label}: row length ${rowLength} is not a multiple of the ${info.name} block size ${info.blockSize}`,
      );
    }
    const nBytes = (elementCount / BigInt(info.blockSize)) * BigInt(info.typeSize);
    const relativeOffset = r.u64();
    return { name, dims, type, typeName: info.name, nBytes, relativeOffset, infoOffset, label };
  }
}

function alignUp(offset: number, alignment: number): number {
  return Math.ceil(offset / alignment) * alignment;
}

async function openModelFile(path: string | URL): Promise<FileHandle> {
  try {
    // O_NONBLOCK: opening a FIFO for reading must not wait for a writer; it is rejected below.
    return await open(path, fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") {
      throw new LlamaError("MODEL_NOT_FOUND", `model file not found: ${String(path)}`, { cause: err });
    }
    throw new LlamaError("MODEL_NOT_FOUND", `cannot open model file ${String(path)}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * Reads the metadata and tensor table of a GGUF file without reading tensor data.
 * Throws LlamaError "MODEL_NOT_FOUND" when the file cannot be opened and "INVALID_GGUF", naming the
 * field and byte offset, when the header is malformed or asks for more than `limits` allow.
 */
export async function readGgufHeader(path: string | URL, options: ReadGgufHeaderOptions = {}): Promise<GgufHeader> {
  const limits = { ...DEFAULT_GGUF_READ_LIMITS, ...options.limits };
  const file = await openModelFile(path);
  try {
    const stats = await file.stat();
    if (!stats.isFile()) throw invalid(`${String(path)} is not a regular file`);
    const parser = new HeaderParser(new WindowReader(file, stats.size), limits, options.arrayItemLimit ?? Infinity);
    return await parser.parse();
  } finally {
    await file.close();
  }
}
