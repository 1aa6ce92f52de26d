// LoRA adapters of a Llama: Llama.load's set applies to every request that names none, a request's
// `lora` replaces it. Each file is loaded once (llama.cpp's adapter, lib/core/lora.ts) and kept until
// the Llama is disposed; the scheduler applies a request's set while it decodes the request's tokens.
import { resolve } from "node:path";
import { LlamaLora } from "../core/lora.js";
import type { LoadedModel } from "../core/loaded-model.js";
import { checkOptions, expectNumber, string } from "../validate.js";

/** A LoRA adapter and its scale (llama.cpp applies scale × alpha / rank of B·A). */
export interface LoraOptions {
  /** The adapter's GGUF (convert_lora_to_gguf.py's output), made for this model's architecture and shapes. */
  path: string;
  /** Default 1; 0 leaves the adapter out. */
  scale?: number;
}

/** The adapters one request decodes with; requests with equal keys may share a batch and cached prompts. */
export interface AdapterSet {
  readonly key: string;
  readonly entries: ReadonlyArray<{ lora: LlamaLora; scale: number }>;
}

export const NO_ADAPTERS: AdapterSet = { key: "", entries: [] };

export function checkLoraList(name: string, value: unknown): void {
  if (!Array.isArray(value)) throw new TypeError(`${name} must be an array of { path, scale }`);
  value.forEach((entry, i) => {
    const o = checkOptions<LoraOptions>(`${name}[${i}]`, entry, { path: string, scale: (n, v) => expectNumber(n, v, { min: -100, max: 100 }) });
    if (o.path === undefined) throw new TypeError(`${name}[${i}].path is required`);
  });
}

export class Adapters {
  readonly #model: LoadedModel;
  readonly #defaults: readonly LoraOptions[];
  readonly #loaded = new Map<string, Promise<LlamaLora>>();
  readonly #ready = new Map<string, LlamaLora>();

  constructor(model: LoadedModel, defaults: readonly LoraOptions[] = []) {
    this.#model = model;
    this.#defaults = defaults;
  }

  /**
   * The set `list` names (undefined: Llama.load's), loading what is not loaded yet; at once when
   * nothing is to load, so that a request without new adapters is queued in call order.
   */
  resolve(list: readonly LoraOptions[] | undefined): AdapterSet | Promise<AdapterSet> {
    const wanted = (list ?? this.#defaults).filter((entry) => (entry.scale ?? 1) !== 0).map((entry) => ({ path: resolve(entry.path), scale: entry.scale ?? 1 }));
    if (wanted.length === 0) return NO_ADAPTERS;
    const setOf = (loras: LlamaLora[]): AdapterSet => ({
      key: wanted.map((e) => `${e.path}*${e.scale}`).join("|"),
      entries: wanted.map((e, i) => ({ lora: loras[i]!, scale: e.scale })),
    });
    const ready = wanted.map((e) => this.#ready.get(e.path));
    if (ready.every((lora) => lora !== undefined)) return setOf(ready as LlamaLora[]);
    return Promise.all(wanted.map((e) => this.#load(e.path))).then(setOf);
  }

  #load(path: string): Promise<LlamaLora> {
    let loading = this.#loaded.get(path);
    if (loading === undefined) {
      loading = LlamaLora.load(this.#model, path);
      this.#loaded.set(path, loading);
      // A file that failed may be fixed: the next request tries again.
      loading.then(
        (lora) => this.#ready.set(path, lora),
        () => this.#loaded.delete(path),
      );
    }
    return loading;
  }

  /** Frees every adapter loaded (a context still applying one keeps it until it is freed). */
  async dispose(): Promise<void> {
    const loaded = await Promise.allSettled(this.#loaded.values());
    this.#loaded.clear();
    this.#ready.clear();
    for (const result of loaded) if (result.status === "fulfilled") result.value.dispose();
  }
}
