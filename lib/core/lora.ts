// LoRA adapters: a GGUF adapter loaded once for a model (llama_adapter_lora), applied by contexts
// with a scale (LlamaContext.setLoras). The header is read first: a file that is not a GGUF LoRA
// adapter is a LORA_FAILED LlamaError rather than whatever llama.cpp makes of it.
import { stat } from "node:fs/promises";
import { withAbort } from "./abort.js";
import { native } from "./binding.js";
import { LlamaError } from "../errors.js";
import { readGgufHeader } from "../gguf/reader.js";
import type { LoadedModel } from "./loaded-model.js";
import type { NativeLora } from "./native.js";
import { expectString } from "../validate.js";
import { valueOf } from "./model-file.js";

export class LlamaLora {
  readonly path: string;
  /** The adapter's own alpha (scale × alpha / rank is what llama.cpp applies); undefined when it has none. */
  readonly alpha: number | undefined;
  #native: NativeLora | null;

  private constructor(path: string, handle: NativeLora, alpha: number | undefined) {
    this.path = path;
    this.#native = handle;
    this.alpha = alpha;
  }

  /** Loads the adapter at `path` for `model`: its architecture and tensor shapes must fit it. */
  static async load(model: LoadedModel, path: string): Promise<LlamaLora> {
    expectString("path", path);
    try {
      if (!(await stat(path)).isFile()) throw new LlamaError("MODEL_NOT_FOUND", `${path} is not a file`);
    } catch (err) {
      if (err instanceof LlamaError) throw err;
      throw new LlamaError("MODEL_NOT_FOUND", `LoRA adapter not found: ${path}`, { cause: err });
    }
    let alpha: number | undefined;
    try {
      const header = await readGgufHeader(path, { arrayItemLimit: 1 << 16 });
      if (valueOf(header, "general.type", "string") !== "adapter" || valueOf(header, "adapter.type", "string") !== "lora") {
        throw new Error("its general.type is not \"adapter\" or its adapter.type not \"lora\"");
      }
      // llama.cpp asserts (ends the process) on an alpha that is not a float32.
      const entry = header.kvs.find((kv) => kv.key === "adapter.lora.alpha");
      if (entry !== undefined && entry.type !== "float32") throw new Error(`adapter.lora.alpha is a ${entry.type}, not a float32`);
      alpha = entry?.value as number | undefined;
    } catch (err) {
      throw new LlamaError("LORA_FAILED", `${path} is not a LoRA adapter llama.cpp can load: ${(err as Error).message}`, { cause: err });
    }
    const handle = await withAbort(undefined, "LoRA load", () => native.loadLora(model.native, path));
    return new LlamaLora(path, handle, alpha);
  }

  get native(): NativeLora {
    if (this.#native === null) throw new LlamaError("DISPOSED", "the LoRA adapter has been disposed");
    return this.#native;
  }

  get disposed(): boolean {
    return this.#native === null;
  }

  /** The adapter's GGUF metadata. */
  metadata(): Record<string, string> {
    return this.native.info().metadata;
  }

  /** Frees the adapter; a context applying it keeps it until it applies others. Idempotent. */
  dispose(): void {
    this.#native?.dispose();
    this.#native = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }
}
