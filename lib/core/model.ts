// LlamaModel: loading a GGUF model, and the factories of its contexts and samplers.
import { progressReporter, withAbort } from "./abort.js";
import { native } from "./binding.js";
import { LlamaContext, type ContextOptions } from "./context.js";
import { LlamaError } from "../errors.js";
import { LoadedModel } from "./loaded-model.js";
import { checkModelFile, valueOf } from "./model-file.js";
import type { NativeLoadOptions, NativeModel } from "./native.js";
import { checkEndpoints, watchRpc } from "./rpc.js";
import { LlamaSampler, type SamplerOptions } from "./sampler.js";
import { boolean, checkOptions, expectString, func, integer, number, signal } from "../validate.js";

export interface LoadModelOptions {
  /** Layers to offload to the GPU (0: none, -1: all). Default 0. */
  nGpuLayers?: number;
  /** The GPU used when the model is not split. Default 0. */
  mainGpu?: number;
  /** Map the file instead of reading it. Default true. */
  useMmap?: boolean;
  /** Lock the weights in RAM. Default false. */
  useMlock?: boolean;
  /** Load the vocabulary only (tokenize/detokenize, no weights, no contexts). Default false. */
  vocabOnly?: boolean;
  /** Validate tensor data while loading (slow). Default false. */
  checkTensors?: boolean;
  /** ggml rpc-server workers ("host:port") that take layers (nGpuLayers says how many leave the CPU). */
  rpcServers?: string[];
  /** Share of the offloaded layers per device (RPC servers first, then local GPUs). */
  tensorSplit?: number[];
  /** Called with the load progress, 0 to 1. */
  onProgress?: (progress: number) => void;
  /** Aborts the load. */
  signal?: AbortSignal;
}

/** A GGUF model loaded by llama.cpp: its vocabulary, metadata, and the factory of contexts and samplers. */
export class LlamaModel extends LoadedModel {
  /** Loads a GGUF model without blocking the event loop. */
  static async load(path: string, options: LoadModelOptions = {}): Promise<LlamaModel> {
    expectString("path", path);
    const o = checkOptions<LoadModelOptions>("options", options, {
      nGpuLayers: integer({ min: -1 }),
      mainGpu: integer({ min: 0 }),
      useMmap: boolean,
      useMlock: boolean,
      vocabOnly: boolean,
      checkTensors: boolean,
      onProgress: func,
      signal: signal,
      rpcServers: checkEndpoints,
      tensorSplit: (name, value) => {
        if (!Array.isArray(value)) throw new TypeError(`${name} must be an array of numbers`);
        value.forEach((v, i) => number({ min: 0 })(`${name}[${i}]`, v));
      },
    });
    if (o.signal?.aborted) throw new LlamaError("ABORTED", "model load aborted", { cause: o.signal.reason });
    const header = await checkModelFile(path, o.vocabOnly ?? false, o.useMmap ?? true);
    const { onProgress, signal: abortSignal, ...modelOptions } = o;
    // The vocabulary itself is read natively, byte for byte, and only where llama.cpp can hang on it.
    const loadOptions: NativeLoadOptions = { ...modelOptions, checkRwkvVocabulary: valueOf(header, "tokenizer.ggml.model", "string") === "rwkv" };
    const progress = progressReporter(onProgress);
    const usesRpc = (loadOptions.rpcServers?.length ?? 0) > 0;
    let handle: NativeModel | null = null;
    try {
      handle = await withAbort(abortSignal, "model load", (flag) => {
        const loading = native.loadModel(path, loadOptions, progress.report, flag);
        return usesRpc ? watchRpc(loading) : loading;
      });
    } finally {
      progress.settle(handle !== null);
    }
    return new LlamaModel(path, handle, usesRpc);
  }

  /** Creates an inference context (KV cache) on this model. */
  createContext(options: ContextOptions = {}): Promise<LlamaContext> {
    return LlamaContext.create(this, options);
  }

  /** Builds a sampler chain for this model's vocabulary. */
  createSampler(options: SamplerOptions = {}): LlamaSampler {
    return new LlamaSampler(this, options);
  }
}
