/**
 * GGUF's type tables and the shape of a parsed header: ggml tensor types with their block sizes,
 * metadata value types in on-disk order, and the header, key/value and tensor records that the
 * reader returns and the writer takes.
 */

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
