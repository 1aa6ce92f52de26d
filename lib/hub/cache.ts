// The Hugging Face cache, in the layout of Python's huggingface_hub, so that either side uses what
// the other downloaded: <cache>/models--owner--repo/{blobs/<etag>, snapshots/<commit>/<path> (a
// relative link to the blob), refs/<revision> (the commit)}; locks in <cache>/.locks/models--owner--repo/.
import { createHash, type Hash } from "node:crypto";
import { createReadStream, type Stats } from "node:fs";
import { mkdir, readFile, readdir, readlink, rename, rm, stat, symlink, writeFile, copyFile, lstat } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, relative, sep } from "node:path";

/** huggingface_hub's home: $HF_HOME, else ~/.cache/huggingface. */
export function hfHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.HF_HOME || join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "huggingface");
}

/** Where the cache is: $HF_HUB_CACHE, else $HF_HOME/hub (as huggingface_hub). */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.HF_HUB_CACHE || join(hfHome(env), "hub");
}

/** A commit id as the Hub writes them. */
export const isCommitHash = (revision: string): boolean => /^[0-9a-f]{40}$/.test(revision);

/** A blob named by the file's SHA-256 (an LFS object) can be checked against its own name. */
const isSha256 = (etag: string): boolean => /^[0-9a-f]{64}$/.test(etag);

/** Feeds a file's first `length` bytes (all of it by default) to `hash`. */
export async function hashFile(hash: Hash, path: string, length?: number): Promise<Hash> {
  if (length === 0) return hash;
  for await (const chunk of createReadStream(path, length === undefined ? {} : { end: length - 1 })) hash.update(chunk as Buffer);
  return hash;
}

/** What identifies a blob's state without reading it. */
const stampOf = (info: Stats): string => `${info.size} ${info.mtimeMs}`;

/** One repository's folder in the cache. */
export class RepoCache {
  readonly root: string;
  readonly folder: string;
  readonly lockFolder: string;

  constructor(cacheDir: string, repoId: string) {
    const name = `models--${repoId.replace("/", "--")}`;
    this.root = cacheDir;
    this.folder = join(cacheDir, name);
    this.lockFolder = join(cacheDir, ".locks", name);
  }

  blobPath(etag: string): string {
    return join(this.folder, "blobs", etag);
  }

  snapshotPath(commit: string, path: string): string {
    return join(this.folder, "snapshots", commit, ...path.split("/"));
  }

  /** Where a local path lies in this repository's snapshots: its commit and path in the repository; null outside them. */
  pathInSnapshot(local: string): { commit: string; path: string } | null {
    const inside = relative(join(this.folder, "snapshots"), local).split(sep);
    const [commit, ...rest] = inside;
    if (commit === undefined || commit === ".." || rest.length === 0 || isAbsolute(inside.join(sep))) return null;
    return { commit, path: rest.join("/") };
  }

  /** The commit a revision resolved to when last online (a commit resolves to itself); null if unknown. */
  async commitOf(revision: string): Promise<string | null> {
    if (isCommitHash(revision)) return revision;
    try {
      const commit = (await readFile(join(this.folder, "refs", ...revision.split("/")), "utf8")).trim();
      return isCommitHash(commit) ? commit : null;
    } catch {
      return null;
    }
  }

  /** Records the commit a revision names now (what the Hub said), unless the revision is that commit. */
  async setRef(revision: string, commit: string): Promise<void> {
    if (revision === commit) return;
    const ref = join(this.folder, "refs", ...revision.split("/"));
    await mkdir(dirname(ref), { recursive: true });
    const tmp = `${ref}.${process.pid}.tmp`;
    await writeFile(tmp, commit);
    await rename(tmp, ref);
  }

  /** Every file path of a snapshot ("/"-separated), or [] when there is none. */
  async snapshotFiles(commit: string): Promise<string[]> {
    const base = join(this.folder, "snapshots", commit);
    try {
      const entries = await readdir(base, { recursive: true, withFileTypes: true });
      return entries.filter((e) => !e.isDirectory()).map((e) => relative(base, join(e.parentPath, e.name)).split(sep).join("/"));
    } catch {
      return [];
    }
  }

  /** Points snapshots/<commit>/<path> at blobs/<etag> with a relative link, as huggingface_hub does (a copy where links fail). */
  async link(commit: string, path: string, etag: string): Promise<string> {
    const target = this.snapshotPath(commit, path);
    const blob = this.blobPath(etag);
    await mkdir(dirname(target), { recursive: true });
    const wanted = relative(dirname(target), blob);
    const current = await readlink(target).catch(() => null);
    if (current === wanted) return target;
    const tmp = `${target}.${process.pid}.tmp`;
    await rm(tmp, { force: true });
    try {
      await symlink(wanted, tmp);
    } catch {
      await copyFile(blob, tmp);
    }
    await rename(tmp, target);
    return target;
  }

  /**
   * Whether blobs/<etag> holds the whole file: its size when `size` is known, and its SHA-256 when
   * the etag is one. Hashing a large model takes seconds, so a check that passed is remembered
   * beside the lock (keyed by size and modification time) and not repeated for an unchanged blob.
   */
  async blobIsSound(etag: string, size: number | null): Promise<boolean> {
    const blob = this.blobPath(etag);
    const info = await stat(blob).catch(() => null);
    if (!info?.isFile() || (size !== null && info.size !== size)) return false;
    if (!isSha256(etag)) return true;
    if ((await readFile(this.#stampPath(etag), "utf8").catch(() => "")) === stampOf(info)) return true;
    if ((await hashFile(createHash("sha256"), blob)).digest("hex") !== etag) return false;
    await this.markSound(etag);
    return true;
  }

  /** Remembers that blobs/<etag> as it is now was checked (by blobIsSound, or as it was downloaded). */
  async markSound(etag: string): Promise<void> {
    const info = await stat(this.blobPath(etag));
    await mkdir(this.lockFolder, { recursive: true });
    await writeFile(this.#stampPath(etag), stampOf(info));
  }

  #stampPath(etag: string): string {
    return join(this.lockFolder, `${etag}.verified`);
  }

  /** The blob a snapshot file points at (its etag), or null when the file is not in the snapshot. */
  async etagOf(commit: string, path: string): Promise<string | null> {
    const file = this.snapshotPath(commit, path);
    if (!(await lstat(file).catch(() => null))?.isSymbolicLink()) return null;
    const match = /(?:^|[\\/])blobs[\\/]([^\\/]+)$/.exec(await readlink(file));
    return match?.[1] ?? null;
  }
}

/** A file of a cached snapshot. */
export interface CachedFile {
  path: string;
  size: number;
}

/** A revision of a cached repository: its commit, the refs that name it, its files. */
export interface CachedRevision {
  commit: string;
  refs: string[];
  files: CachedFile[];
}

/** A cached repository, with what it takes on disk (each blob once). */
export interface CachedRepo {
  repoId: string;
  path: string;
  size: number;
  revisions: CachedRevision[];
}

/** Every model repository in the cache, as huggingface_hub's scan_cache_dir sees them. */
export async function listCachedModels(cacheDir: string = defaultCacheDir()): Promise<CachedRepo[]> {
  const names = await readdir(cacheDir).catch(() => [] as string[]);
  const repos: CachedRepo[] = [];
  for (const name of names.filter((n) => n.startsWith("models--")).sort()) {
    const repoId = name.slice("models--".length).replaceAll("--", "/");
    const repo = new RepoCache(cacheDir, repoId);
    const refs = await readdir(join(repo.folder, "refs"), { recursive: true, withFileTypes: true }).catch(() => []);
    const refOf = new Map<string, string[]>();
    for (const ref of refs.filter((e) => e.isFile())) {
      const refName = relative(join(repo.folder, "refs"), join(ref.parentPath, ref.name)).split(sep).join("/");
      const commit = await repo.commitOf(refName);
      if (commit) refOf.set(commit, [...(refOf.get(commit) ?? []), refName]);
    }
    const blobs = new Map<string, number>();
    const revisions: CachedRevision[] = [];
    for (const commit of (await readdir(join(repo.folder, "snapshots")).catch(() => [] as string[])).sort()) {
      const files: CachedFile[] = [];
      for (const path of await repo.snapshotFiles(commit)) {
        const info = await stat(repo.snapshotPath(commit, path)).catch(() => null);
        if (!info) continue;
        files.push({ path, size: info.size });
        blobs.set(`${info.dev}:${info.ino}`, info.size);
      }
      revisions.push({ commit, refs: refOf.get(commit) ?? [], files });
    }
    const size = [...blobs.values()].reduce((a, b) => a + b, 0);
    repos.push({ repoId, path: repo.folder, size, revisions });
  }
  return repos;
}
