/**
 * Where a GGUF file's tensor data lies: the rules that place each entry of the tensor table in the
 * data blob after the header.
 */
import { LlamaError } from "../errors.js";
import type { GgufTensorInfo } from "./types.js";

/** A tensor-table entry as read, before its data is placed in the file. */
export interface PendingTensor {
  name: string;
  dims: number[];
  type: number;
  typeName: string;
  nBytes: bigint;
  relativeOffset: bigint;
  infoOffset: number;
  label: string;
}

/**
 * Checks where each tensor's data lies. ggml requires the data blob to be packed in tensor order,
 * each tensor padded to the alignment, and llama.cpp requires every tensor to lie inside the file.
 */
export function placeTensors(
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
      throw new LlamaError(
        "INVALID_GGUF",
        `${t.label}: data offset ${t.relativeOffset} is not a multiple of the alignment ${alignment}`,
      );
    }
    if (t.relativeOffset !== expectedOffset) {
      throw new LlamaError(
        "INVALID_GGUF",
        `${t.label}: data offset ${t.relativeOffset}, expected ${expectedOffset} ` +
          `(tensor data must be packed in tensor order, each tensor padded to ${alignment} bytes)`,
      );
    }
    const end = t.relativeOffset + t.nBytes;
    if (end > bytesAfterData) {
      throw new LlamaError(
        "INVALID_GGUF",
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
