/**
 * Streaming GGUF v3 writer (no native code).
 *
 * The header is encoded in memory (it holds only metadata and the tensor table); tensor data is
 * produced chunk by chunk by a callback per tensor and written as it comes, so the memory used does
 * not grow with the file. Files are written to a temporary name and renamed into place when complete.
 */
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import { GGUF_VALUE_TYPES, ggmlTypeInfo, type GgufKv, type GgufValue, type GgufValueType } from "./types.js";

/** Where a tensor sits in the file and what it holds. `dims` are innermost (ggml `ne[0]`) first. */
export interface GgufTensorDescriptor {
  name: string;
  dims: readonly number[];
  /** ggml type id, e.g. `GgmlType.F16`. */
  type: number;
}

export interface GgufTensorSource extends GgufTensorDescriptor {
  /**
   * Fills `chunk` with the tensor's bytes from `byteOffset` on. Called in order of increasing
   * `byteOffset` until the tensor is complete. `chunk.length` is a multiple of the type's block
   * bytes and `chunk.byteOffset` is 0, so typed-array views over `chunk.buffer` are safe. The same
   * memory is reused between calls: it holds stale bytes that must all be overwritten.
   */
  fill(chunk: Buffer, byteOffset: number): void | Promise<void>;
}

export interface EncodedGgufHeader {
  /** The header followed by the zero padding up to `dataOffset`. */
  bytes: Buffer;
  alignment: number;
  dataOffset: number;
  /** Absolute file offset of each tensor's data, in tensor order. */
  tensorOffsets: number[];
  tensorBytes: number[];
  /** Size of the complete file, each tensor padded to the alignment. */
  fileSize: number;
}

export interface WriteGgufOptions {
  /** Upper bound on the bytes asked of one `fill` call (default 8 MiB). */
  chunkBytes?: number;
}

export interface GgufWriteResult {
  fileSize: number;
  dataOffset: number;
  alignment: number;
  tensorOffsets: number[];
}

const GGUF_MAGIC = 0x46554747; // "GGUF" as a little-endian uint32
const GGUF_VERSION = 3;
const GGUF_DEFAULT_ALIGNMENT = 32;
const GGML_MAX_DIMS = 4;
const GGML_MAX_NAME = 64;
const GGUF_MAX_KEY_BYTES = 65535;
const MAX_ALIGNMENT = 1 << 20;
const DEFAULT_CHUNK_BYTES = 8 << 20;

const INTEGER_RANGES: Partial<Record<GgufValueType, readonly [bigint, bigint]>> = {
  uint8: [0n, 0xffn],
  int8: [-0x80n, 0x7fn],
  uint16: [0n, 0xffffn],
  int16: [-0x8000n, 0x7fffn],
  uint32: [0n, 0xffffffffn],
  int32: [-0x80000000n, 0x7fffffffn],
  uint64: [0n, (1n << 64n) - 1n],
  int64: [-(1n << 63n), (1n << 63n) - 1n],
};

/** Growable little-endian byte buffer for the header. */
class ByteSink {
  private buffer = Buffer.allocUnsafe(1 << 16);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + n));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  u8(v: number): void {
    this.reserve(1);
    this.length = this.buffer.writeUInt8(v, this.length);
  }
  i8(v: number): void {
    this.reserve(1);
    this.length = this.buffer.writeInt8(v, this.length);
  }
  u16(v: number): void {
    this.reserve(2);
    this.length = this.buffer.writeUInt16LE(v, this.length);
  }
  i16(v: number): void {
    this.reserve(2);
    this.length = this.buffer.writeInt16LE(v, this.length);
  }
  u32(v: number): void {
    this.reserve(4);
    this.length = this.buffer.writeUInt32LE(v, this.length);
  }
  i32(v: number): void {
    this.reserve(4);
    this.length = this.buffer.writeInt32LE(v, this.length);
  }
  /** A non-negative safe integer as uint64, without going through a bigint. */
  u64Number(v: number): void {
    this.reserve(8);
    this.buffer.writeUInt32LE(v % 2 ** 32, this.length);
    this.length = this.buffer.writeUInt32LE(Math.floor(v / 2 ** 32), this.length + 4);
  }
  u64(v: bigint): void {
    this.reserve(8);
    this.length = this.buffer.writeBigUInt64LE(v, this.length);
  }
  i64(v: bigint): void {
    this.reserve(8);
    this.length = this.buffer.writeBigInt64LE(v, this.length);
  }
  f32(v: number): void {
    this.reserve(4);
    this.length = this.buffer.writeFloatLE(v, this.length);
  }
  f64(v: number): void {
    this.reserve(8);
    this.length = this.buffer.writeDoubleLE(v, this.length);
  }
  string(s: string): void {
    const n = Buffer.byteLength(s, "utf8");
    this.u64Number(n);
    this.reserve(n);
    this.length += this.buffer.write(s, this.length, n, "utf8");
  }
  zeros(n: number): void {
    this.reserve(n);
    this.buffer.fill(0, this.length, this.length + n);
    this.length += n;
  }
  /** The bytes written so far (a copy, so the sink's spare capacity is released). */
  take(): Buffer {
    return Buffer.from(this.buffer.subarray(0, this.length));
  }
}

function checkType(type: unknown, where: string): asserts type is GgufValueType {
  if (!(GGUF_VALUE_TYPES as readonly unknown[]).includes(type)) {
    throw new TypeError(`${where}: unknown GGUF value type ${JSON.stringify(type)}`);
  }
}

function integerValue(value: GgufValue, type: GgufValueType, where: string): bigint {
  let big: bigint;
  if (typeof value === "bigint") big = value;
  else if (typeof value === "number" && Number.isSafeInteger(value)) big = BigInt(value);
  else throw new TypeError(`${where}: ${type} needs an integer, got ${describe(value)}`);
  const [min, max] = INTEGER_RANGES[type]!;
  if (big < min || big > max) throw new RangeError(`${where}: ${big} is outside the ${type} range [${min}, ${max}]`);
  return big;
}

function describe(value: unknown): string {
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === "object" && value !== null) return Array.isArray(value) ? "an array" : "an object";
  return String(value);
}

function encodeValue(sink: ByteSink, type: GgufValueType, value: GgufValue, where: string): void {
  switch (type) {
    case "uint8":
      return sink.u8(Number(integerValue(value, type, where)));
    case "int8":
      return sink.i8(Number(integerValue(value, type, where)));
    case "uint16":
      return sink.u16(Number(integerValue(value, type, where)));
    case "int16":
      return sink.i16(Number(integerValue(value, type, where)));
    case "uint32":
      return sink.u32(Number(integerValue(value, type, where)));
    case "int32":
      return sink.i32(Number(integerValue(value, type, where)));
    case "uint64":
      return sink.u64(integerValue(value, type, where));
    case "int64":
      return sink.i64(integerValue(value, type, where));
    case "float32":
    case "float64":
      if (typeof value !== "number") throw new TypeError(`${where}: ${type} needs a number, got ${describe(value)}`);
      return type === "float32" ? sink.f32(value) : sink.f64(value);
    case "bool":
      if (typeof value !== "boolean") throw new TypeError(`${where}: bool needs a boolean, got ${describe(value)}`);
      return sink.u8(value ? 1 : 0);
    case "string":
      if (typeof value !== "string") throw new TypeError(`${where}: string needs a string, got ${describe(value)}`);
      return sink.string(value);
    case "array": {
      if (typeof value !== "object" || value === null || !Array.isArray(value.items)) {
        throw new TypeError(`${where}: array needs { itemType, items: [...] }, got ${describe(value)}`);
      }
      checkType(value.itemType, `${where} itemType`);
      if (value.skippedItems !== undefined) throw new TypeError(`${where}: the array was read without its items (arrayItemLimit)`);
      sink.i32(GGUF_VALUE_TYPES.indexOf(value.itemType));
      sink.u64Number(value.items.length);
      // Fast path for the large string arrays of tokenizers.
      if (value.itemType === "string") {
        for (const item of value.items) {
          if (typeof item !== "string") throw new TypeError(`${where}: string array holds ${describe(item)}`);
          sink.string(item);
        }
        return;
      }
      value.items.forEach((item, i) => encodeValue(sink, value.itemType, item, `${where}[${i}]`));
      return;
    }
  }
}

function alignmentOf(kvs: readonly GgufKv[]): number {
  const entry = kvs.find((kv) => kv.key === "general.alignment");
  if (entry === undefined) return GGUF_DEFAULT_ALIGNMENT;
  if (entry.type !== "uint32" || typeof entry.value !== "number") {
    throw new TypeError(`general.alignment must be a uint32 number, got ${entry.type} ${describe(entry.value)}`);
  }
  const alignment = entry.value;
  if (alignment <= 0 || alignment > MAX_ALIGNMENT || (alignment & (alignment - 1)) !== 0) {
    throw new RangeError(`general.alignment must be a power of 2 up to ${MAX_ALIGNMENT}, got ${alignment}`);
  }
  return alignment;
}

function tensorByteSize(tensor: GgufTensorDescriptor, where: string): number {
  const info = ggmlTypeInfo(tensor.type);
  if (info === undefined) throw new RangeError(`${where}: unknown ggml type ${tensor.type}`);
  const dims = tensor.dims;
  if (!Array.isArray(dims) || dims.length < 1 || dims.length > GGML_MAX_DIMS) {
    throw new RangeError(`${where}: needs 1 to ${GGML_MAX_DIMS} dimensions, got ${describe(dims)}`);
  }
  let elements = 1;
  for (const size of dims) {
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`${where}: invalid dimension ${size}`);
    elements *= size;
  }
  if (dims[0]! % info.blockSize !== 0) {
    throw new RangeError(`${where}: row length ${dims[0]} is not a multiple of the ${info.name} block size ${info.blockSize}`);
  }
  const bytes = (elements / info.blockSize) * info.typeSize;
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`${where}: shape [${dims.join(", ")}] is too large`);
  return bytes;
}

function alignUp(offset: number, alignment: number): number {
  return Math.ceil(offset / alignment) * alignment;
}

/** Encodes a GGUF v3 header; throws TypeError/RangeError on values that do not fit their types. */
export function encodeGgufHeader(
  kvs: readonly GgufKv[],
  tensors: readonly GgufTensorDescriptor[],
): EncodedGgufHeader {
  const alignment = alignmentOf(kvs);
  const sink = new ByteSink();
  sink.u32(GGUF_MAGIC);
  sink.u32(GGUF_VERSION);
  sink.u64Number(tensors.length);
  sink.u64Number(kvs.length);

  const keys = new Set<string>();
  for (const kv of kvs) {
    const where = `metadata ${JSON.stringify(kv.key)}`;
    if (typeof kv.key !== "string" || kv.key.length === 0) throw new TypeError(`metadata key must be a non-empty string`);
    if (Buffer.byteLength(kv.key) > GGUF_MAX_KEY_BYTES) throw new RangeError(`${where}: key is too long`);
    if (keys.has(kv.key)) throw new RangeError(`${where}: duplicate key`);
    keys.add(kv.key);
    checkType(kv.type, where);
    sink.string(kv.key);
    sink.i32(GGUF_VALUE_TYPES.indexOf(kv.type));
    encodeValue(sink, kv.type, kv.value, where);
  }

  const names = new Set<string>();
  const tensorBytes: number[] = [];
  const relativeOffsets: number[] = [];
  let dataBytes = 0;
  for (const tensor of tensors) {
    const where = `tensor ${JSON.stringify(tensor.name)}`;
    if (typeof tensor.name !== "string") throw new TypeError(`tensor name must be a string`);
    if (Buffer.byteLength(tensor.name) >= GGML_MAX_NAME) {
      throw new RangeError(`${where}: name is longer than ${GGML_MAX_NAME - 1} bytes`);
    }
    if (names.has(tensor.name)) throw new RangeError(`${where}: duplicate tensor name`);
    names.add(tensor.name);
    const bytes = tensorByteSize(tensor, where);
    sink.string(tensor.name);
    sink.u32(tensor.dims.length);
    for (const size of tensor.dims) sink.u64Number(size);
    sink.i32(tensor.type);
    sink.u64Number(dataBytes);
    relativeOffsets.push(dataBytes);
    tensorBytes.push(bytes);
    dataBytes = alignUp(dataBytes + bytes, alignment);
  }

  const dataOffset = tensors.length > 0 ? alignUp(sink.length, alignment) : sink.length;
  sink.zeros(dataOffset - sink.length);
  return {
    bytes: sink.take(),
    alignment,
    dataOffset,
    tensorOffsets: relativeOffsets.map((offset) => dataOffset + offset),
    tensorBytes,
    fileSize: dataOffset + dataBytes,
  };
}

async function writeFully(file: FileHandle, data: Buffer, position: number): Promise<void> {
  let written = 0;
  while (written < data.length) {
    const { bytesWritten } = await file.write(data, written, data.length - written, position + written);
    written += bytesWritten;
  }
}

/**
 * Writes a GGUF v3 file. The alignment is `general.alignment` from `kvs` when present (uint32),
 * otherwise 32. Tensor data comes from each tensor's `fill`; one chunk is generated while the
 * previous one is being written, so at most two chunks are held in memory.
 */
export async function writeGguf(
  path: string,
  content: { kvs: readonly GgufKv[]; tensors: readonly GgufTensorSource[] },
  options: WriteGgufOptions = {},
): Promise<GgufWriteResult> {
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes <= 0) {
    throw new RangeError(`chunkBytes must be a positive integer, got ${chunkBytes}`);
  }
  const header = encodeGgufHeader(content.kvs, content.tensors);

  // Each tensor is produced in steps of whole blocks, at most chunkBytes (or one block) at a time.
  const steps = content.tensors.map((tensor) => {
    const blockBytes = ggmlTypeInfo(tensor.type)!.typeSize;
    return Math.max(blockBytes, Math.floor(chunkBytes / blockBytes) * blockBytes);
  });
  const capacity = steps.reduce((most, step, i) => Math.max(most, Math.min(step, header.tensorBytes[i]!)), 0);
  const chunks = [Buffer.allocUnsafeSlow(capacity), Buffer.allocUnsafeSlow(capacity)];
  const padding = Buffer.alloc(header.alignment);

  const tempPath = `${path}.partial-${process.pid}`;
  const file = await open(tempPath, "w");
  let pendingWrite: Promise<void> = writeFully(file, header.bytes, 0);
  try {
    let position = header.dataOffset;
    let chunkIndex = 0;
    for (const [i, tensor] of content.tensors.entries()) {
      const total = header.tensorBytes[i]!;
      for (let byteOffset = 0; byteOffset < total; byteOffset += steps[i]!) {
        const chunk = chunks[chunkIndex++ % 2]!.subarray(0, Math.min(steps[i]!, total - byteOffset));
        await tensor.fill(chunk, byteOffset);
        await pendingWrite; // frees the other chunk for the next fill
        pendingWrite = writeFully(file, chunk, position);
        position += chunk.length;
      }
      const padBytes = alignUp(position, header.alignment) - position;
      if (padBytes > 0) {
        await pendingWrite;
        pendingWrite = writeFully(file, padding.subarray(0, padBytes), position);
        position += padBytes;
      }
    }
    await pendingWrite;
    await file.close();
  } catch (err) {
    await pendingWrite.catch(() => undefined);
    await file.close().catch(() => undefined);
    await rm(tempPath, { force: true });
    throw err;
  }
  await rename(tempPath, path);
  return {
    fileSize: header.fileSize,
    dataOffset: header.dataOffset,
    alignment: header.alignment,
    tensorOffsets: header.tensorOffsets,
  };
}
