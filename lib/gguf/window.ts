/**
 * The GGUF header reader's view of the file: a buffered window read sequentially, and the sizes and
 * decoding of GGUF's fixed-size values in it.
 */
import type { FileHandle } from "node:fs/promises";
import { LlamaError } from "../errors.js";
import type { GgufValueType } from "./types.js";

// Reads start small (most headers of small files fit) and double up to the largest chunk.
const FIRST_READ_BYTES = 64 << 10;
const READ_CHUNK_BYTES = 1 << 20;

/** Encoded size of each fixed-size value type; strings and arrays have none. */
export const FIXED_VALUE_BYTES: Partial<Record<GgufValueType, number>> = {
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
export function minValueBytes(type: GgufValueType): number {
  if (type === "string") return 8; // length prefix
  if (type === "array") return 12; // item type + count
  return FIXED_VALUE_BYTES[type]!;
}

/**
 * Sequential reader over a file handle that keeps a window of the file in memory. Callers check
 * `available` and await `fill` only when the window runs short, so tight loops over array elements
 * stay synchronous and a syscall happens once per window, not once per value.
 */
export class WindowReader {
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
      throw new LlamaError(
        "INVALID_GGUF",
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
        throw new LlamaError("INVALID_GGUF", `file shrank while reading ${what()} at byte ${this.offset}`);
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

/** Reads one fixed-size value; the caller made sure its bytes are in the window. */
export function readFixed(r: WindowReader, type: GgufValueType): number | bigint | boolean {
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
