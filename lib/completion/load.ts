// What Llama.load opens before a Llama exists: the model's file (a model named on the Hub, the
// model's or the draft's, is resolved to its file in the Hub cache, downloaded there first when
// needed), the model, and the one context that holds every sequence.
import { defaultThreads } from "../core/backend.js";
import { MAX_CONTEXT_TOKENS, type LlamaContext } from "../core/context.js";
import { LlamaModel } from "../core/model.js";
import { LlamaProjector } from "../core/projector.js";
import { LlamaError } from "../errors.js";
import { resolveModelFile, resolveProjectorFile, type HubOptions } from "../hub/resolve.js";
import { checkRepoId } from "../hub/spec.js";
import { expectObject, expectString } from "../validate.js";
import { checkCanShift, contextShiftOf } from "./context-shift.js";
import { flashAttentionOf, LOAD_DEFAULTS, type LlamaLoadOptions } from "./options.js";

/** Llama.fromPretrained's options: a Hub repository and file instead of a path, and every Llama.load option. */
export interface FromPretrainedOptions extends Omit<LlamaLoadOptions, "modelPath"> {
  /** The repository, "owner/name". */
  repoId: string;
  /** The GGUF's path in it, or a glob ("*Q4_K_M.gguf") that must match one model. Default: its one GGUF, else its Q4_K_M. */
  filename?: string;
  /** A branch, tag or commit. Default "main". */
  revision?: string;
}

const hubOptionsOf = (o: HubOptions): HubOptions => ({ cacheDir: o.cacheDir, token: o.token, onDownloadProgress: o.onDownloadProgress, signal: o.signal });

/** Load options with every model named on the Hub replaced by its local file. */
export async function withLocalModels<T extends LlamaLoadOptions>(options: T): Promise<T> {
  const hub = hubOptionsOf(options);
  const modelPath = await resolveModelFile(options.modelPath, hub);
  const mmprojPath = options.mmprojPath === undefined ? undefined : await resolveModelFile(options.mmprojPath, hub);
  const draft = options.draft;
  if (draft === undefined || draft.type === "ngram") return { ...options, modelPath, mmprojPath };
  return { ...options, modelPath, mmprojPath, draft: { ...draft, modelPath: await resolveModelFile(draft.modelPath, hub) } };
}

/** fromPretrained's options as Llama.load's, the repository's file resolved (and downloaded). */
export async function pretrainedLoadOptions(options: FromPretrainedOptions): Promise<LlamaLoadOptions> {
  const { repoId, filename, revision, ...load } = expectObject("options", options) as unknown as FromPretrainedOptions;
  checkRepoId("options.repoId", expectString("options.repoId", repoId));
  if (filename !== undefined) expectString("options.filename", filename);
  if (revision !== undefined) expectString("options.revision", revision);
  const modelPath = await resolveModelFile({ repoId, filename, revision }, hubOptionsOf(load));
  // As llama-server's -hf: the repository's projector comes with its model, unless one is named.
  const mmprojPath = load.mmprojPath ?? (await resolveProjectorFile(repoId, modelPath, { ...hubOptionsOf(load), revision }));
  return { ...load, modelPath, ...(mmprojPath === undefined ? {} : { mmprojPath }) };
}

/** What openModel opens. */
export interface OpenedModel {
  model: LlamaModel;
  context: LlamaContext | null;
  /** The multimodal projector, with mmprojPath. */
  projector: LlamaProjector | null;
  nThreads: number;
}

/** The model, its generation context (none for vocabOnly) and projector, with the threads the context runs; nothing is left open when it fails. */
export async function openModel(o: LlamaLoadOptions): Promise<OpenedModel> {
  const model = await LlamaModel.load(o.modelPath, {
    nGpuLayers: o.nGpuLayers ?? LOAD_DEFAULTS.nGpuLayers,
    useMmap: o.useMmap ?? true,
    useMlock: o.useMlock ?? false,
    vocabOnly: o.vocabOnly ?? false,
    rpcServers: o.rpcServers,
    tensorSplit: o.tensorSplit,
    onProgress: o.onProgress,
    signal: o.signal,
  });
  const nThreads = o.nThreads ?? defaultThreads();
  if (o.vocabOnly) return { model, context: null, projector: null, nThreads };
  let context: LlamaContext | null = null;
  try {
    const nParallel = o.nParallel ?? LOAD_DEFAULTS.nParallel;
    const nCtx = o.nCtx === 0 ? model.info.nCtxTrain : (o.nCtx ?? LOAD_DEFAULTS.nCtx);
    // One context holds every sequence.
    if (nCtx * nParallel > MAX_CONTEXT_TOKENS) {
      throw new RangeError(`options.nCtx × options.nParallel must be at most ${MAX_CONTEXT_TOKENS}, got ${nCtx} × ${nParallel}`);
    }
    context = await model.createContext({
      nCtx: nCtx * nParallel,
      nBatch: o.nBatch ?? LOAD_DEFAULTS.nBatch,
      nUbatch: o.nUbatch ?? LOAD_DEFAULTS.nUbatch,
      nSeqMax: nParallel,
      nThreads,
      nThreadsBatch: o.nThreadsBatch ?? nThreads,
      flashAttn: flashAttentionOf(o.flashAttn),
    });
    if (contextShiftOf(o.contextShift) !== null) checkCanShift(context, "options.contextShift");
    const projectorOptions = { nThreads, useGpu: o.nGpuLayers !== 0, flashAttn: flashAttentionOf(o.flashAttn), signal: o.signal };
    const projector = o.mmprojPath === undefined ? null : await LlamaProjector.load(model, o.mmprojPath, projectorOptions);
    if (projector?.info.mrope) {
      projector.dispose();
      throw new LlamaError("UNSUPPORTED", `${o.mmprojPath} places media by M-RoPE (Qwen2-VL's family), which llama-napi does not support yet`);
    }
    return { model, context, projector, nThreads };
  } catch (err) {
    await context?.dispose();
    model.dispose();
    throw err;
  }
}
