// Talking to the Hub (or the mirror $HF_ENDPOINT names): its file listing through @huggingface/hub,
// and a file's metadata from the headers of `resolve`, as huggingface_hub reads them. The token
// goes only to the Hub's own origin, never to the CDN a download is redirected to.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { listFiles } from "@huggingface/hub";
import { LlamaError } from "../errors.js";
import { hfHome } from "./cache.js";
import { isSafeRepoPath } from "./spec.js";

/** The Hub's address: $HF_ENDPOINT (a mirror, or a stand-in in tests), else huggingface.co. */
export function hubEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  return (env.HF_ENDPOINT || "https://huggingface.co").replace(/\/+$/, "");
}

/** HF_HUB_OFFLINE=1 (or true/yes/on): use the cache only, as huggingface_hub does. */
export function isOffline(env: NodeJS.ProcessEnv = process.env): boolean {
  return ["1", "ON", "YES", "TRUE"].includes((env.HF_HUB_OFFLINE ?? "").toUpperCase());
}

/** The token to send: the caller's, else $HF_TOKEN, else the one `hf auth login` saved, as huggingface_hub finds it. */
export function hubToken(token: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (token) return token;
  const fromEnv = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN;
  if (fromEnv) return fromEnv.trim();
  if (env.HF_HUB_DISABLE_IMPLICIT_TOKEN) return undefined;
  const file = env.HF_TOKEN_PATH || join(hfHome(env), "token");
  try {
    return readFileSync(file, "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The Hub could not be reached at all (as opposed to answering an error): the cache may still serve. */
export class HubUnreachable extends Error {}

/** What `resolve` says of one file. */
export interface RemoteFile {
  /** The commit the revision names now. */
  commit: string;
  /** The blob's name: the SHA-256 of an LFS file, the git object id of another. */
  etag: string;
  size: number | null;
  /** Where its bytes are (a CDN address after the Hub's redirect). */
  url: string;
}

const stripEtag = (etag: string): string => etag.replace(/^W\//, "").replace(/^"|"$/g, "");

export class HubClient {
  readonly endpoint: string;
  readonly #token: string | undefined;
  readonly #signal: AbortSignal | undefined;
  /** The X-Error-Code of the last failed answer (RepoNotFound, GatedRepo, EntryNotFound, RevisionNotFound). */
  #errorCode: string | null = null;

  constructor(token: string | undefined, signal: AbortSignal | undefined) {
    this.endpoint = hubEndpoint();
    this.#token = hubToken(token);
    this.#signal = signal;
  }

  /** fetch, with the token where the Hub itself answers, the caller's signal, and failures typed. */
  readonly fetch = async (url: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const href = url instanceof Request ? url.url : String(url);
    const headers = new Headers(init.headers);
    if (this.#token && new URL(href).origin === new URL(this.endpoint).origin) headers.set("Authorization", `Bearer ${this.#token}`);
    let response: Response;
    try {
      response = await fetch(href, { ...init, headers, signal: this.#signal });
    } catch (err) {
      if (this.#signal?.aborted) throw new LlamaError("ABORTED", "the download was aborted", { cause: err });
      throw new HubUnreachable(`cannot reach ${new URL(href).origin}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`);
    }
    this.#errorCode = response.ok ? null : response.headers.get("X-Error-Code");
    return response;
  };

  /** Every file path of a repository at a revision. */
  async listFiles(repoId: string, revision: string): Promise<string[]> {
    const paths: string[] = [];
    try {
      const entries = listFiles({ repo: { type: "model", name: repoId }, revision, recursive: true, hubUrl: this.endpoint, fetch: this.fetch });
      // A path that would leave the repository's folder is not one of its files.
      for await (const entry of entries) if (entry.type === "file" && isSafeRepoPath(entry.path)) paths.push(entry.path);
    } catch (err) {
      if (err instanceof LlamaError || err instanceof HubUnreachable) throw err;
      throw this.error((err as { statusCode?: number }).statusCode ?? 0, repoId, revision, undefined, err);
    }
    return paths;
  }

  /** A file's commit, blob name, size and address, from `resolve`'s headers (its relative redirects followed). */
  async remoteFile(repoId: string, revision: string, path: string): Promise<RemoteFile> {
    let url = `${this.endpoint}/${repoId}/resolve/${encodeURIComponent(revision)}/${path.split("/").map(encodeURIComponent).join("/")}`;
    for (let hops = 0; hops < 5; hops++) {
      const response = await this.fetch(url, { method: "HEAD", redirect: "manual", headers: { "Accept-Encoding": "identity" } });
      const location = response.headers.get("Location");
      const commit = response.headers.get("X-Repo-Commit");
      const etag = response.headers.get("X-Linked-Etag") ?? response.headers.get("ETag");
      if (response.status >= 300 && response.status < 400 && location) {
        // A redirect that says what the file is points at its bytes (the CDN); one that does not is
        // the Hub's own (a renamed repository), and is followed.
        url = new URL(location, url).href;
        if (!(commit && etag)) continue;
      } else if (!response.ok) {
        throw this.error(response.status, repoId, revision, path);
      }
      // Both become file names in the cache: only the hashes the Hub sends are taken.
      const blob = etag === null ? "" : stripEtag(etag);
      if (!commit || !/^[0-9a-f]{40}$/.test(commit) || !/^([0-9a-f]{40}|[0-9a-f]{64})$/.test(blob)) {
        throw new LlamaError("DOWNLOAD_FAILED", `${this.endpoint} gave no commit or ETag for ${repoId}/${path}: is HF_ENDPOINT a Hub?`);
      }
      const size = Number(response.headers.get("X-Linked-Size") ?? response.headers.get("Content-Length") ?? NaN);
      return { commit, etag: blob, size: Number.isFinite(size) ? size : null, url };
    }
    throw new LlamaError("DOWNLOAD_FAILED", `too many redirects resolving ${repoId}/${path}`);
  }

  /** The typed error for a failed answer; never carries the token. */
  error(status: number, repoId: string, revision: string, path?: string, cause?: unknown): LlamaError {
    const code = this.#errorCode;
    const tokenHint = this.#token ? "" : " (a private repository needs a token: pass `token` or set HF_TOKEN)";
    if (code === "GatedRepo" || ((status === 401 || status === 403) && code !== "RepoNotFound")) {
      const what = code === "GatedRepo" ? `${repoId} is gated` : `${repoId} needs authentication`;
      const fix = this.#token
        ? "the token given has no access to it: accept its conditions on the Hub with the token's account"
        : "accept its conditions on the Hub and pass a token (the `token` option or HF_TOKEN)";
      return new LlamaError("AUTH_REQUIRED", `${what}: ${fix}`, { cause });
    }
    if (code === "RevisionNotFound") return new LlamaError("MODEL_NOT_FOUND", `${repoId} has no revision ${revision}`, { cause });
    if (code === "EntryNotFound" || (status === 404 && path && code !== "RepoNotFound")) {
      return new LlamaError("MODEL_NOT_FOUND", `${repoId}@${revision} has no file ${path}`, { cause });
    }
    if (status === 404 || status === 401 || code === "RepoNotFound") {
      return new LlamaError("MODEL_NOT_FOUND", `no repository ${repoId} on ${this.endpoint}${tokenHint}`, { cause });
    }
    return new LlamaError("DOWNLOAD_FAILED", `${this.endpoint} answered ${status} for ${repoId}${path ? `/${path}` : ""}`, { cause });
  }
}
