// Fetching one blob into the cache so that it cannot be left broken: under a lock file (one process
// fetches, the others wait for it), into blobs/<etag>.incomplete (resumed with a Range request after
// a cut), hashed as it arrives, and moved into place only once its size and SHA-256 are the Hub's.
// Written by hand because @huggingface/hub 2.x's downloadFileToCacheDir neither resumes nor checks.
import { createHash, randomUUID, type Hash } from "node:crypto";
import { link, mkdir, open, readFile, rename, rm, stat, truncate, utimes, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { LlamaError } from "../errors.js";
import { hashFile, type RepoCache } from "./cache.js";
import { HubUnreachable, type HubClient, type RemoteFile } from "./client.js";

/** Where a download is: bytes of `file` (its path in the repository) so far, of `total` (0 while unknown). */
export interface DownloadProgress {
  file: string;
  downloaded: number;
  total: number;
}

export type ProgressListener = (progress: DownloadProgress) => void;

/** A lock not refreshed for this long belongs to a process that is gone (another machine's, on a shared cache). */
const STALE_LOCK_MS = 30_000;
const HEARTBEAT_MS = 5_000;
/** Cuts a download survives within one call, each resumed where it stopped. */
const RETRIES = 3;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function isStale(lock: string): Promise<boolean> {
  const info = await stat(lock).catch(() => null);
  if (!info) return false;
  const owner = await readFile(lock, "utf8").then((text) => JSON.parse(text) as { pid?: number; host?: string }, () => null);
  if (owner?.host === hostname() && typeof owner.pid === "number" && !isAlive(owner.pid)) return true;
  return Date.now() - info.mtimeMs > STALE_LOCK_MS;
}

/** A lock file held by this process: refreshed while held; `held()` says whether it is still ours. */
interface Lock {
  held(): Promise<boolean>;
  release(): Promise<void>;
}

/**
 * Takes the lock file `path`, waiting while another live process holds it. The file is written
 * whole under another name and then linked into place, which fails when the lock exists: so a lock
 * is never seen half-written. (Our own name, not huggingface_hub's: its lock files are flock()ed,
 * and stay behind empty after a download.)
 */
async function acquireLock(path: string, signal: AbortSignal | undefined, whileWaiting: () => Promise<void>): Promise<Lock> {
  await mkdir(join(path, ".."), { recursive: true });
  const owner = JSON.stringify({ pid: process.pid, host: hostname(), id: randomUUID() });
  const draft = `${path}.${process.pid}.${randomUUID()}`;
  await writeFile(draft, owner);
  try {
    for (;;) {
      if (signal?.aborted) throw new LlamaError("ABORTED", "the download was aborted while another process was fetching the file");
      try {
        await link(draft, path);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      if (await isStale(path)) {
        await rm(path, { force: true });
        continue;
      }
      await whileWaiting();
      await sleep(200, undefined, { signal }).catch(() => undefined);
    }
  } finally {
    await rm(draft, { force: true });
  }
  const heartbeat = setInterval(() => {
    const now = new Date();
    utimes(path, now, now).catch(() => undefined);
  }, HEARTBEAT_MS);
  heartbeat.unref();
  return {
    held: async () => (await readFile(path, "utf8").catch(() => "")) === owner,
    release: async () => {
      clearInterval(heartbeat);
      if ((await readFile(path, "utf8").catch(() => "")) === owner) await rm(path, { force: true });
    },
  };
}

/** Reports progress at most every 100 ms, and always at the end. */
function throttled(listener: ProgressListener | undefined, file: string, total: number): (downloaded: number, last?: boolean) => void {
  let at = 0;
  return (downloaded, last = false) => {
    if (!listener || (!last && Date.now() - at < 100)) return;
    at = Date.now();
    listener({ file, downloaded, total });
  };
}

/** Appends the body of `url` (from byte `from`) to `partial`, hashing it; returns the bytes the file then holds. */
async function fetchInto(client: HubClient, url: string, partial: string, from: number, hash: Hash, report: (n: number) => void): Promise<number> {
  const response = await client.fetch(url, { headers: from > 0 ? { Range: `bytes=${from}-` } : {} });
  if (from > 0 && response.status === 416) return from;
  const failure = `${new URL(url).origin} answered ${response.status} for ${url.split("?")[0]}`;
  // A server error may pass (it is tried again); a refusal will not.
  if (response.status >= 500) throw new Error(failure);
  if (!response.ok || !response.body) throw new LlamaError("DOWNLOAD_FAILED", failure);
  // A server that ignores the Range sends everything again: start over.
  const resumed = from > 0 && response.status === 206;
  let written = resumed ? from : 0;
  const file = await open(partial, resumed ? "a" : "w");
  try {
    for await (const chunk of response.body) {
      await file.write(chunk);
      hash.update(chunk);
      written += chunk.byteLength;
      report(written);
    }
  } finally {
    await file.close();
  }
  return written;
}

/** Puts the file `remote` describes into the cache's blobs, or throws; the caller links the snapshot. */
export async function fetchBlob(
  client: HubClient,
  repo: RepoCache,
  file: string,
  remote: RemoteFile,
  listener: ProgressListener | undefined,
  signal: AbortSignal | undefined,
): Promise<void> {
  const blob = repo.blobPath(remote.etag);
  const partial = `${blob}.incomplete`;
  const report = throttled(listener, file, remote.size ?? 0);
  const lock = await acquireLock(join(repo.lockFolder, `${remote.etag}.llama-napi.lock`), signal, async () => {
    // Another process is fetching it: show its progress.
    report((await stat(partial).catch(() => null))?.size ?? 0);
  });
  try {
    if (await repo.blobIsSound(remote.etag, remote.size)) return report(remote.size ?? 0, true);
    await mkdir(join(blob, ".."), { recursive: true });
    const expectSha = /^[0-9a-f]{64}$/.test(remote.etag);
    for (let attempt = 0, restarted = false; ; attempt++) {
      let have = (await stat(partial).catch(() => null))?.size ?? 0;
      if (remote.size !== null && have > remote.size) {
        await truncate(partial, 0);
        have = 0;
      }
      const hash = createHash("sha256");
      if (have > 0) await hashFile(hash, partial, have);
      let size: number;
      try {
        size = await fetchInto(client, remote.url, partial, have, hash, report);
      } catch (err) {
        if (err instanceof LlamaError || signal?.aborted || attempt >= RETRIES) throw downloadError(err, signal, file);
        await sleep(500 * 2 ** attempt, undefined, { signal }).catch(() => undefined);
        continue;
      }
      const digest = hash.digest("hex");
      if ((remote.size === null || size === remote.size) && (!expectSha || digest === remote.etag)) break;
      // What was there before may be what is wrong (a partial from another source): once, start clean.
      await rm(partial, { force: true });
      if (restarted) {
        throw new LlamaError("DOWNLOAD_FAILED", `${file} arrived damaged: ${size} bytes with SHA-256 ${digest}, but the Hub says ${remote.size ?? "?"} bytes with ${remote.etag}`);
      }
      restarted = true;
    }
    if (!(await lock.held())) throw new LlamaError("DOWNLOAD_FAILED", `another process took over the download of ${file}`);
    await rename(partial, blob);
    await repo.markSound(remote.etag);
    report(remote.size ?? 0, true);
  } finally {
    await lock.release();
  }
}

function downloadError(err: unknown, signal: AbortSignal | undefined, file: string): unknown {
  if (signal?.aborted) return new LlamaError("ABORTED", `the download of ${file} was aborted (what arrived is kept and resumed next time)`, { cause: err });
  if (err instanceof LlamaError) return err;
  const reason = err instanceof HubUnreachable ? err.message : `the connection broke: ${(err as Error).message}`;
  return new LlamaError("DOWNLOAD_FAILED", `${file} could not be downloaded (${reason}); what arrived is kept and resumed next time`, { cause: err });
}
