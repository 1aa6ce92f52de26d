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

/** One ggml tensor type: `blockSize` elements are stored in `typeSize` bytes. */
export interface GgmlTypeInfo {
  readonly id: number;
  /** The `GGML_TYPE_` enum name without the prefix, e.g. "Q4_K". */
  readonly name: GgmlTypeName;
  readonly blockSize: number;
  readonly typeSize: number;
}

// [id, name, block size, type size], from ggml.h `enum ggml_type` and the static_asserts on the
// block structs in ggml-common.h. Ids 4, 5 and 31..33, 36..38 were removed from ggml and are invalid.
const GGML_TYPE_ROWS = [
  [0, "F32", 1, 4],
  [1, "F16", 1, 2],
  [2, "Q4_0", 32, 18],
  [3, "Q4_1", 32, 20],
  [6, "Q5_0", 32, 22],
  [7, "Q5_1", 32, 24],
  [8, "Q8_0", 32, 34],
  [9, "Q8_1", 32, 36],
  [10, "Q2_K", 256, 84],
  [11, "Q3_K", 256, 110],
  [12, "Q4_K", 256, 144],
  [13, "Q5_K", 256, 176],
  [14, "Q6_K", 256, 210],
  [15, "Q8_K", 256, 292],
  [16, "IQ2_XXS", 256, 66],
  [17, "IQ2_XS", 256, 74],
  [18, "IQ3_XXS", 256, 98],
  [19, "IQ1_S", 256, 50],
  [20, "IQ4_NL", 32, 18],
  [21, "IQ3_S", 256, 110],
  [22, "IQ2_S", 256, 82],
  [23, "IQ4_XS", 256, 136],
  [24, "I8", 1, 1],
  [25, "I16", 1, 2],
  [26, "I32", 1, 4],
  [27, "I64", 1, 8],
  [28, "F64", 1, 8],
  [29, "IQ1_M", 256, 56],
  [30, "BF16", 1, 2],
  [34, "TQ1_0", 256, 54],
  [35, "TQ2_0", 256, 66],
  [39, "MXFP4", 32, 17],
  [40, "NVFP4", 64, 36],
  [41, "Q1_0", 128, 18],
  [42, "Q2_0", 64, 18],
] as const;

export type GgmlTypeName = (typeof GGML_TYPE_ROWS)[number][1];

/** All tensor types a GGUF file may use, ordered by id. */
export const GGML_TYPES: readonly GgmlTypeInfo[] = GGML_TYPE_ROWS.map(([id, name, blockSize, typeSize]) =>
  Object.freeze({ id, name, blockSize, typeSize }),
);

const ggmlTypesById = new Map(GGML_TYPES.map((info) => [info.id, info]));

/** ggml type ids by name, e.g. `GgmlType.F16 === 1`. */
export const GgmlType = Object.freeze(
  Object.fromEntries(GGML_TYPES.map((info) => [info.name, info.id])) as Record<GgmlTypeName, number>,
);

/** The traits of a ggml type id, or undefined for an unknown or removed id. */
export function ggmlTypeInfo(id: number): GgmlTypeInfo | undefined {
  return ggmlTypesById.get(id);
}

/** GGUF metadata value types, in the order of their on-disk ids (`enum gguf_type`). */
export const GGUF_VALUE_TYPES = [
  "uint8",
  "int8",
  "uint16",
  "int16",
  "uint32",
  "int32",
  "float32",
  "bool",
  "string",
  "array",
  "uint64",
  "int64",
  "float64",
] as const;

export type GgufValueType = (typeof GGUF_VALUE_TYPES)[number];

/** An array value keeps its element type so that it can be written back unchanged. */
export interface GgufArray {
  itemType: GgufValueType;
  items: GgufValue[];
  /**
   * Set instead of `items` when the array was longer than `arrayItemLimit`: how many elements it
   * holds. Such an array was checked but not kept, and cannot be written back.
   */
  skippedItems?: number;
}

/** Integers up to 32 bits and floats are numbers, 64-bit integers are bigints. */
export type GgufValue = number | bigint | boolean | string | GgufArray;

/** One metadata entry with its on-disk type. */
export interface GgufKv {
  key: string;
  type: GgufValueType;
  value: GgufValue;
}

export interface GgufTensorInfo {
  name: string;
  /** Sizes per dimension, innermost (ggml `ne[0]`) first. */
  dims: number[];
  /** ggml type id. */
  type: number;
  /** ggml type name, e.g. "F16" or "Q4_K". */
  typeName: string;
  /** Absolute file offset of the tensor's data. */
  offset: number;
  nBytes: number;
}

export interface GgufHeader {
  version: number;
  alignment: number;
  /** Values by key (a prototype-less object: keys come from the file). */
  metadata: Record<string, GgufValue>;
  /** The same entries in file order, with their types. */
  kvs: GgufKv[];
  tensors: GgufTensorInfo[];
  /** Absolute file offset where tensor data begins. */
  dataOffset: number;
  fileSize: number;
}

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
// Reads start small (most headers of small files fit) and double up to the largest chunk.
const FIRST_READ_BYTES = 64 << 10;
const READ_CHUNK_BYTES = 1 << 20;

const FIXED_VALUE_BYTES: Partial<Record<GgufValueType, number>> = {
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  bool: 1,
  uint64: 8,
  int64: 8,
  float64: 8,
};

// The fewest bytes a value of each type occupies: lets a declared count be rejected before reading.
function minValueBytes(type: GgufValueType): number {
  if (type === "string") return 8; // length prefix
  if (type === "array") return 12; // item type + count
  return FIXED_VALUE_BYTES[type]!;
}

function invalid(message: string): LlamaError {
  return new LlamaError("INVALID_GGUF", message);
}

/**
 * Sequential reader over a file handle that keeps a window of the file in memory. Callers check
 * `available` and await `fill` only when the window runs short, so tight loops over array elements
 * stay synchronous and a syscall happens once per window, not once per value.
 */
class WindowReader {
  private window: Buffer = Buffer.allocUnsafe(FIRST_READ_BYTES);
  private chunkBytes = FIRST_READ_BYTES;
  private windowStart = 0; // file offset of window[0]
  private windowEnd = 0; // bytes of window holding file data
  private cursor = 0; // read position inside window

  constructor(
    private readonly file: FileHandle,
    readonly fileSize: number,
  ) {}

  /** Absolute file offset of the next byte to read. */
  get offset(): number {
    return this.windowStart + this.cursor;
  }

  get available(): number {
    return this.windowEnd - this.cursor;
  }

  get remainingInFile(): number {
    return this.fileSize - this.offset;
  }

  /** Makes at least `n` bytes available; `what` names the field for the error message. */
  async fill(n: number, what: () => string): Promise<void> {
    if (n > this.remainingInFile) {
      throw invalid(
        `file truncated: ${what()} needs ${n} bytes at byte ${this.offset}, but the file ends at byte ${this.fileSize}`,
      );
    }
    // Slide the unread bytes to the front, then read ahead one chunk (or `n` bytes, if more).
    this.windowStart += this.cursor;
    const target = Math.min(Math.max(n, this.chunkBytes), this.fileSize - this.windowStart);
    this.chunkBytes = Math.min(this.chunkBytes * 2, READ_CHUNK_BYTES);
    const source = this.window;
    if (target > this.window.length) this.window = Buffer.allocUnsafe(target);
    source.copy(this.window, 0, this.cursor, this.windowEnd);
    this.windowEnd -= this.cursor;
    this.cursor = 0;
    while (this.windowEnd < target) {
      const { bytesRead } = await this.file.read(
        this.window,
        this.windowEnd,
        target - this.windowEnd,
        this.windowStart + this.windowEnd,
      );
      if (bytesRead === 0) {
        if (this.windowEnd >= n) break;
        throw invalid(`file shrank while reading ${what()} at byte ${this.offset}`);
      }
      this.windowEnd += bytesRead;
    }
  }

  skip(n: number): void {
    this.cursor += n;
  }

  /** Moves `n` bytes ahead, past the window if need be; the caller checked they are in the file. */
  skipAhead(n: number): void {
    if (n <= this.available) {
      this.cursor += n;
      return;
    }
    this.windowStart = this.offset + n;
    this.windowEnd = 0;
    this.cursor = 0;
  }

  /**
   * A uint64 that the caller will use as a length, without consuming it: returned as a number, or
   * -1 when it is 2^53 or more, which exceeds every cap anyway. Avoids a bigint per string in large
   * string arrays. The caller checks that 8 bytes are available.
   */
  peekU64Length(): number {
    const high = this.window.readUInt32LE(this.cursor + 4);
    return high >= 1 << 21 ? -1 : high * 2 ** 32 + this.window.readUInt32LE(this.cursor);
  }

  u8(): number {
    return this.window[this.cursor++]!;
  }
  i8(): number {
    const v = this.window.readInt8(this.cursor);
    this.cursor += 1;
    return v;
  }
  u16(): number {
    const v = this.window.readUInt16LE(this.cursor);
    this.cursor += 2;
    return v;
  }
  i16(): number {
    const v = this.window.readInt16LE(this.cursor);
    this.cursor += 2;
    return v;
  }
  u32(): number {
    const v = this.window.readUInt32LE(this.cursor);
    this.cursor += 4;
    return v;
  }
  i32(): number {
    const v = this.window.readInt32LE(this.cursor);
    this.cursor += 4;
    return v;
  }
  u64(): bigint {
    const v = this.window.readBigUInt64LE(this.cursor);
    this.cursor += 8;
    return v;
  }
  i64(): bigint {
    const v = this.window.readBigInt64LE(this.cursor);
    this.cursor += 8;
    return v;
  }
  f32(): number {
    const v = this.window.readFloatLE(this.cursor);
    this.cursor += 4;
    return v;
  }
  f64(): number {
    const v = this.window.readDoubleLE(this.cursor);
    this.cursor += 8;
    return v;
  }
  /** Reads the length that `peekU64Length` returns. */
  u64Length(): number {
    const length = this.peekU64Length();
    this.cursor += 8;
    return length;
  }
  utf8(n: number): string {
    const s = this.window.toString("utf8", this.cursor, this.cursor + n);
    this.cursor += n;
    return s;
  }
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

interface PendingTensor {
  name: string;
  dims: number[];
  type: number;
  typeName: string;
  nBytes: bigint;
  relativeOffset: bigint;
  infoOffset: number;
  label: string;
}

function readFixed(r: WindowReader, type: GgufValueType): number | bigint | boolean {
  switch (type) {
    case "uint8":
      return r.u8();
    case "int8":
      return r.i8();
    case "uint16":
      return r.u16();
    case "int16":
      return r.i16();
    case "uint32":
      return r.u32();
    case "int32":
      return r.i32();
    case "float32":
      return r.f32();
    case "bool":
      return r.u8() !== 0; // ggml treats any non-zero byte as true
    case "uint64":
      return r.u64();
    case "int64":
      return r.i64();
    case "float64":
      return r.f64();
    default:
      throw new Error(`not a fixed-size GGUF type: ${type}`);
  }
}

function alignUp(offset: number, alignment: number): number {
  return Math.ceil(offset / alignment) * alignment;
}

/**
 * Checks where each tensor's data lies. ggml requires the data blob to be packed in tensor order,
 * each tensor padded to the alignment, and llama.cpp requires every tensor to lie inside the file.
 */
function placeTensors(
  tensors: PendingTensor[],
  dataOffset: number,
  alignment: number,
  fileSize: number,
): GgufTensorInfo[] {
  const bigAlignment = BigInt(alignment);
  const bytesAfterData = BigInt(fileSize - dataOffset);
  let expectedOffset = 0n;
  return tensors.map((t) => {
    if (t.relativeOffset % bigAlignment !== 0n) {
      throw invalid(`${t.label}: data offset ${t.relativeOffset} is not a multiple of the alignment ${alignment}`);
    }
    if (t.relativeOffset !== expectedOffset) {
      throw invalid(
        `${t.label}: data offset ${t.relativeOffset}, expected ${expectedOffset} ` +
          `(tensor data must be packed in tensor order, each tensor padded to ${alignment} bytes)`,
      );
    }
    const end = t.relativeOffset + t.nBytes;
    if (end > bytesAfterData) {
      throw invalid(
        `${t.label}: data [${BigInt(dataOffset) + t.relativeOffset}, ${BigInt(dataOffset) + end}) ` +
          `lies outside the file of ${fileSize} bytes`,
      );
    }
    expectedOffset = end + ((bigAlignment - (end % bigAlignment)) % bigAlignment);
    return {
      name: t.name,
      dims: t.dims,
      type: t.type,
      typeName: t.typeName,
      offset: dataOffset + Number(t.relativeOffset),
      nBytes: Number(t.nBytes),
    };
  });
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
