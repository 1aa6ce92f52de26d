// A model's name to a local GGUF path: a path passes as is; a Hub model is found in the cache or
// downloaded into it (every part of a split model), as huggingface_hub's hf_hub_download does.
import { stat } from "node:fs/promises";
import { LlamaError } from "../errors.js";
import { checkOptions, expectObject, func, signal, string } from "../validate.js";
import { defaultCacheDir, isCommitHash, RepoCache } from "./cache.js";
import { HubClient, HubUnreachable, isOffline } from "./client.js";
import { fetchBlob, type ProgressListener } from "./download.js";
import { checkRepoId, checkRepoPath, isHubUri, parseHubUri, pickModelFile, pickProjector, shardsOf, type HubModelSpec } from "./spec.js";

/** How a model is fetched from the Hub. */
export interface HubOptions {
  /** The Hub cache. Default: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub (shared with Python). */
  cacheDir?: string;
  /** A Hub access token, for gated and private repositories. Default: $HF_TOKEN, else the one `hf auth login` saved. */
  token?: string;
  /** Called as bytes arrive: `{ file, downloaded, total }`. */
  onDownloadProgress?: ProgressListener;
  signal?: AbortSignal;
}

export interface ResolveModelOptions extends HubOptions {
  /** A branch, tag or commit, where the model names none. Default "main". */
  revision?: string;
}

export const hubOptionChecks = { cacheDir: string, token: string, onDownloadProgress: func, signal };

function checkSpec(value: unknown): HubModelSpec {
  const spec = expectObject("model", value) as Record<string, unknown>;
  const repoId = checkRepoId("model.repoId", string("model.repoId", spec.repoId));
  for (const key of ["filename", "quant", "revision"] as const) if (spec[key] !== undefined) string(`model.${key}`, spec[key]);
  if (spec.filename !== undefined && spec.quant !== undefined) throw new TypeError("model takes a filename or a quant, not both");
  return { repoId, filename: spec.filename as string | undefined, quant: spec.quant as string | undefined, revision: spec.revision as string | undefined };
}

/**
 * The local path of a model: a file path is returned as is; a Hub model (`hf:owner/repo/file.gguf`,
 * `hf:owner/repo:Q4_K_M`, or `{ repoId, filename }`, where filename may be a glob) comes from the Hub
 * cache, downloaded there first when it is not, or not whole. Split models come whole; the path
 * returned is the first part's. With HF_HUB_OFFLINE=1 only the cache is read.
 */
export async function resolveModelFile(model: string | HubModelSpec, options: ResolveModelOptions = {}): Promise<string> {
  const o = checkOptions<ResolveModelOptions>("options", options, { ...hubOptionChecks, revision: string });
  if (typeof model === "string" && !isHubUri(model)) return model;
  const spec = typeof model === "string" ? parseHubUri(model) : checkSpec(model);
  if (spec.filename !== undefined) checkRepoPath("the model's filename", spec.filename);
  const revision = checkRepoPath("the revision", spec.revision ?? o.revision ?? "main");
  const repo = new RepoCache(o.cacheDir ?? defaultCacheDir(), spec.repoId);
  if (isOffline()) return fromCache(repo, spec, revision);
  // A file of a commit already in the cache needs no question to the Hub.
  if (isCommitHash(revision) && spec.filename !== undefined && !/[*?[]/.test(spec.filename)) {
    const cached = await fromCache(repo, spec, revision).catch(() => null);
    if (cached !== null) return cached;
  }
  const client = new HubClient(o.token, o.signal);
  try {
    const exact = spec.filename !== undefined && !/[*?[]/.test(spec.filename);
    const path = pickModelFile(spec, exact ? [spec.filename as string] : await client.listFiles(spec.repoId, revision));
    let commit = "";
    for (const part of shardsOf(path)) {
      const remote = await client.remoteFile(spec.repoId, revision, part);
      commit = remote.commit;
      if (!(await repo.blobIsSound(remote.etag, remote.size))) await fetchBlob(client, repo, part, remote, o.onDownloadProgress, o.signal);
      await repo.link(remote.commit, part, remote.etag);
    }
    await repo.setRef(revision, commit);
    return repo.snapshotPath(commit, path);
  } catch (err) {
    if (!(err instanceof HubUnreachable)) throw err;
    // As huggingface_hub: when the Hub cannot be reached, what the cache holds still serves.
    return fromCache(repo, spec, revision).catch((cacheErr: LlamaError) => {
      throw new LlamaError("DOWNLOAD_FAILED", `${err.message}, and the cache cannot serve instead: ${cacheErr.message}`, { cause: err });
    });
  }
}

/**
 * The multimodal projector a Hub repository offers beside its model `modelFile` (a local path
 * resolveModelFile returned), picked as llama-server's -hf picks it, fetched like a model;
 * undefined when the repository has none.
 */
export async function resolveProjectorFile(repoId: string, modelFile: string, options: ResolveModelOptions = {}): Promise<string | undefined> {
  const revision = options.revision ?? "main";
  const repo = new RepoCache(options.cacheDir ?? defaultCacheDir(), repoId);
  const inRepo = repo.pathInSnapshot(modelFile);
  if (inRepo === null) return undefined;
  const cached = async () => repo.snapshotFiles((await repo.commitOf(revision)) ?? "");
  let files: string[];
  try {
    files = isOffline() ? await cached() : await new HubClient(options.token, options.signal).listFiles(repoId, revision);
  } catch (err) {
    if (!(err instanceof HubUnreachable)) throw err;
    files = await cached();
  }
  const projector = pickProjector(inRepo.path, files);
  return projector === undefined ? undefined : resolveModelFile({ repoId, filename: projector, revision }, options);
}

/** A model from the cache alone: the snapshot its revision last resolved to, every part there and whole. */
async function fromCache(repo: RepoCache, spec: HubModelSpec, revision: string): Promise<string> {
  const name = `${spec.repoId}${spec.filename ? `/${spec.filename}` : spec.quant ? `:${spec.quant}` : ""}`;
  const commit = await repo.commitOf(revision);
  const files = commit === null ? [] : await repo.snapshotFiles(commit);
  if (commit === null || files.length === 0) {
    throw new LlamaError("NOT_CACHED", `${name} (revision ${revision}) is not in the cache at ${repo.root}, and the Hub is not to be asked (offline)`);
  }
  let path: string;
  try {
    path = pickModelFile({ ...spec, revision }, files);
  } catch (err) {
    if ((err as LlamaError).code !== "MODEL_NOT_FOUND") throw err;
    throw new LlamaError("NOT_CACHED", `the cache holds no ${name} (${(err as Error).message})`, { cause: err });
  }
  for (const part of shardsOf(path)) {
    const etag = await repo.etagOf(commit, part);
    // A snapshot file that is a copy (where links are not allowed) has no blob to check.
    const whole = etag === null ? (await stat(repo.snapshotPath(commit, part)).catch(() => null))?.isFile() : await repo.blobIsSound(etag, null);
    if (!whole) {
      throw new LlamaError("NOT_CACHED", `the cached ${spec.repoId}/${part} is missing or damaged; go online to fetch it again`);
    }
  }
  return repo.snapshotPath(commit, path);
}
