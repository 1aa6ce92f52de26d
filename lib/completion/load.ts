// What Llama.load opens before a Llama exists: the model's file (a model named on the Hub, the
// model's or the draft's, is resolved to its file in the Hub cache, downloaded there first when
// needed), the model, and the one context that holds every sequence.
import { defaultThreads } from "../core/backend.js";
import { MAX_CONTEXT_TOKENS, type LlamaContext } from "../core/context.js";
import { LlamaModel } from "../core/model.js";
import { resolveModelFile, type HubOptions } from "../hub/resolve.js";
import { checkRepoId } from "../hub/spec.js";
import { expectObject, expectString } from "../validate.js";
import { checkCanShift, contextShiftOf } from "./context-shift.js";
import { LOAD_DEFAULTS, type LlamaLoadOptions } from "./options.js";

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
  const draft = options.draft;
  if (draft === undefined || draft.type === "ngram") return { ...options, modelPath };
  return { ...options, modelPath, draft: { ...draft, modelPath: await resolveModelFile(draft.modelPath, hub) } };
}

/** fromPretrained's options as Llama.load's, the repository's file resolved (and downloaded). */
export async function pretrainedLoadOptions(options: FromPretrainedOptions): Promise<LlamaLoadOptions> {
  const { repoId, filename, revision, ...load } = expectObject("options", options) as unknown as FromPretrainedOptions;
  checkRepoId("options.repoId", expectString("options.repoId", repoId));
  if (filename !== undefined) expectString("options.filename", filename);
  if (revision !== undefined) expectString("options.revision", revision);
  return { ...load, modelPath: await resolveModelFile({ repoId, filename, revision }, hubOptionsOf(load)) };
}

/** The model and its generation context (none for vocabOnly), with the threads the context runs; nothing is left open when it fails. */
export async function openModel(o: LlamaLoadOptions): Promise<{ model: LlamaModel; context: LlamaContext | null; nThreads: number }> {
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
  if (o.vocabOnly) return { model, context: null, nThreads };
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
      flashAttn: o.flashAttn === undefined || o.flashAttn === "auto" ? "auto" : o.flashAttn ? "on" : "off",
    });
    if (contextShiftOf(o.contextShift) !== null) checkCanShift(context, "options.contextShift");
    return { model, context, nThreads };
  } catch (err) {
    await context?.dispose();
    model.dispose();
    throw err;
  }
}
