/** Machine-readable reasons a llama-napi operation failed. */
export type LlamaErrorCode =
  | "MODEL_NOT_FOUND"
  | "INVALID_GGUF"
  | "MODEL_LOAD_FAILED"
  | "CONTEXT_CREATE_FAILED"
  | "CONTEXT_FULL"
  | "DECODE_FAILED"
  | "INVALID_GRAMMAR"
  | "INVALID_ARGUMENT"
  | "CHAT_TEMPLATE"
  | "INCOMPATIBLE_DRAFT"
  | "LORA_FAILED"
  | "STATE_FAILED"
  | "QUANTIZE_FAILED"
  | "TOKENIZE_FAILED"
  | "DISPOSED"
  | "ABORTED"
  | "BUSY"
  | "UNSUPPORTED"
  | "RPC_UNAVAILABLE"
  | "NO_BINARY"
  | "AMBIGUOUS_MODEL"
  | "AUTH_REQUIRED"
  | "DOWNLOAD_FAILED"
  | "NOT_CACHED"
  | "INCOMPATIBLE_MMPROJ"
  | "INVALID_MEDIA"
  | "NATIVE_ERROR";

/** Every failure of llama-napi itself (as opposed to bad arguments, which throw TypeError/RangeError). */
export class LlamaError extends Error {
  readonly code: LlamaErrorCode;

  constructor(code: LlamaErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LlamaError";
    this.code = code;
  }
}

const knownCodes = new Set<string>([
  "MODEL_NOT_FOUND",
  "INVALID_GGUF",
  "MODEL_LOAD_FAILED",
  "CONTEXT_CREATE_FAILED",
  "CONTEXT_FULL",
  "DECODE_FAILED",
  "INVALID_GRAMMAR",
  "INVALID_ARGUMENT",
  "CHAT_TEMPLATE",
  "INCOMPATIBLE_DRAFT",
  "LORA_FAILED",
  "STATE_FAILED",
  "QUANTIZE_FAILED",
  "TOKENIZE_FAILED",
  "DISPOSED",
  "ABORTED",
  "BUSY",
  "UNSUPPORTED",
  "RPC_UNAVAILABLE",
  "INCOMPATIBLE_MMPROJ",
  "INVALID_MEDIA",
  "NATIVE_ERROR",
]);

/** Turns an error thrown by the addon (an Error with a string `code`) into a LlamaError. */
export function fromNativeError(err: unknown): unknown {
  if (err instanceof LlamaError) return err;
  if (err instanceof Error) {
    const code = (err as Error & { code?: unknown }).code;
    if (typeof code === "string" && knownCodes.has(code)) {
      return new LlamaError(code as LlamaErrorCode, err.message);
    }
  }
  return err;
}
