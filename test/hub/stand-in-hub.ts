// A local stand-in for the Hugging Face Hub, answering as huggingface.co does what llama-napi asks:
// the file tree (/api/models/<repo>/tree/<revision>) and paths-info, `resolve` (a 302 to a CDN path carrying
// X-Repo-Commit, X-Linked-Etag and X-Linked-Size for an LFS file; the bytes with an ETag for a
// small one), the CDN (Range requests), and the Hub's errors (401 with X-Error-Code RepoNotFound or
// GatedRepo, 404 EntryNotFound / RevisionNotFound). It logs every request, and can cut a download.
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";

export interface StandInRepo {
  /** Path in the repository → contents. GGUFs are served as LFS files, others as plain git files. */
  files: Record<string, Buffer>;
  /** Needs a token (the hub's `token`) to download, as a gated repository. */
  gated?: boolean;
  /** The commit "main" names; default a hash of the repository's name. */
  commit?: string;
}

export interface HubRequest {
  method: string;
  path: string;
  range: string | null;
  authorization: string | null;
}

export interface StandInHub {
  url: string;
  requests: HubRequest[];
  repos: Map<string, StandInRepo>;
  /** The next CDN response sends this many bytes and then breaks the connection. */
  cutNextDownloadAfter(bytes: number): void;
  /** CDN responses trickle (a chunk each `ms`), so that a test can act mid-download. */
  slowDown(ms: number): void;
  /** Requests for file bytes (the CDN), to check what was downloaded. */
  downloads(): HubRequest[];
  close(): Promise<void>;
}

export const GOOD_TOKEN = "hf_standInGoodToken";

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("hex");
const gitOid = (data: Buffer): string => createHash("sha1").update(`blob ${data.length}\0`).update(data).digest("hex");
const commitOf = (repoId: string, repo: StandInRepo): string => repo.commit ?? createHash("sha1").update(repoId).digest("hex");
const isLfs = (path: string): boolean => path.endsWith(".gguf");

export async function startStandInHub(repos: Record<string, StandInRepo>): Promise<StandInHub> {
  const table = new Map(Object.entries(repos));
  const requests: HubRequest[] = [];
  let cutAfter: number | null = null;
  let delay = 0;
  const blobs = (): Map<string, Buffer> => new Map([...table.values()].flatMap((r) => Object.values(r.files).map((data) => [sha256(data), data] as const)));

  function error(res: ServerResponse, status: number, code: string, message: string): void {
    res.writeHead(status, { "Content-Type": "application/json", "X-Error-Code": code });
    res.end(JSON.stringify({ error: message }));
  }

  /** The repository of a request, or an error sent; `download` asks for a gated repository's token. */
  function repoFor(req: IncomingMessage, res: ServerResponse, repoId: string, revision: string, download: boolean): StandInRepo | null {
    const repo = table.get(repoId);
    if (!repo) {
      error(res, 401, "RepoNotFound", "Repository Not Found");
      return null;
    }
    const auth = req.headers.authorization ?? null;
    if (download && repo.gated && auth !== `Bearer ${GOOD_TOKEN}`) {
      error(res, auth ? 403 : 401, "GatedRepo", `Access to model ${repoId} is restricted.`);
      return null;
    }
    if (revision !== "main" && revision !== commitOf(repoId, repo)) {
      error(res, 404, "RevisionNotFound", `Invalid rev id: ${revision}`);
      return null;
    }
    return repo;
  }

  async function serveBytes(req: IncomingMessage, res: ServerResponse, data: Buffer): Promise<void> {
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    const start = range ? Number(range[1]) : 0;
    const end = range?.[2] ? Math.min(Number(range[2]) + 1, data.length) : data.length;
    if (start >= data.length && range) {
      res.writeHead(416, { "Content-Range": `bytes */${data.length}` });
      return void res.end();
    }
    const body = data.subarray(start, end);
    res.writeHead(range ? 206 : 200, {
      "Content-Length": body.length,
      "Accept-Ranges": "bytes",
      ...(range ? { "Content-Range": `bytes ${start}-${end - 1}/${data.length}` } : {}),
    });
    if (req.method === "HEAD") return void res.end();
    const cut = cutAfter;
    cutAfter = null;
    const step = delay > 0 ? 16 * 1024 : body.length;
    for (let at = 0; at < body.length; at += step) {
      const chunk = body.subarray(at, Math.min(at + step, body.length));
      if (cut !== null && at + chunk.length > cut) {
        res.write(chunk.subarray(0, cut - at));
        await new Promise((resolve) => setTimeout(resolve, 50));
        res.socket?.destroy();
        return;
      }
      if (!res.write(chunk)) await new Promise((resolve) => res.once("drain", resolve));
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
      if (res.destroyed) return;
    }
    res.end();
  }

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? "/", "http://stand-in");
    const path = decodeURIComponent(url.pathname);
    requests.push({ method: req.method ?? "GET", path, range: req.headers.range ?? null, authorization: req.headers.authorization ?? null });
    let m: RegExpExecArray | null;
    if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/(tree|paths-info)\/([^/]+)(?:\/(.*))?$/.exec(path))) {
      const [, repoId = "", endpoint = "", revision = "", folder = ""] = m;
      const repo = repoFor(req, res, repoId, revision, false);
      if (!repo) return;
      const listed = (paths: (p: string) => boolean) =>
        Object.entries(repo.files)
          .filter(([p]) => paths(p))
          .map(([p, data]) => ({
            type: "file",
            path: p,
            size: data.length,
            oid: gitOid(data),
            ...(isLfs(p) ? { lfs: { oid: sha256(data), size: data.length, pointerSize: 134 } } : {}),
            lastCommit: { id: commitOf(repoId, repo), title: "stand-in", date: "2026-01-01T00:00:00.000Z" },
          }));
      if (endpoint === "tree") {
        res.writeHead(200, { "Content-Type": "application/json" });
        return void res.end(JSON.stringify(listed((p) => p.startsWith(folder))));
      }
      // paths-info: a POST naming the paths wanted (JSON or a form, as the Hub takes both).
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString();
        const wanted = body.startsWith("{") ? ((JSON.parse(body) as { paths?: string[] }).paths ?? []) : new URLSearchParams(body).getAll("paths");
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify(listed((p) => wanted.includes(p))));
      });
      return;
    }
    if ((m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path))) {
      const [, repoId = "", revision = "", file = ""] = m;
      const repo = repoFor(req, res, repoId, revision, true);
      if (!repo) return;
      const data = repo.files[file];
      if (!data) return error(res, 404, "EntryNotFound", `${file} does not exist`);
      const commit = commitOf(repoId, repo);
      if (isLfs(file)) {
        res.writeHead(302, {
          Location: `${address(cdn)}/cdn/${sha256(data)}?signature=stand-in`,
          "X-Repo-Commit": commit,
          "X-Linked-Etag": `"${sha256(data)}"`,
          "X-Linked-Size": data.length,
          ETag: `"${gitOid(data)}"`,
        });
        return void res.end();
      }
      res.setHeader("X-Repo-Commit", commit);
      res.setHeader("ETag", `"${gitOid(data)}"`);
      return void serveBytes(req, res, data);
    }
    if ((m = /^\/cdn\/([0-9a-f]{64})$/.exec(path))) {
      const data = blobs().get(m[1] ?? "");
      if (!data) return error(res, 404, "EntryNotFound", "no such object");
      res.setHeader("ETag", `"${m[1]}"`);
      return void serveBytes(req, res, data);
    }
    error(res, 404, "NotFound", `the stand-in hub has no ${path}`);
  };
  // The CDN listens apart, as an origin of its own: what is sent there must carry no token.
  const [hub, cdn] = [createServer(handle), createServer(handle)];
  for (const server of [hub, cdn]) await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = (server: Server): string => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: address(hub),
    requests,
    repos: table,
    cutNextDownloadAfter: (bytes) => void (cutAfter = bytes),
    slowDown: (ms) => void (delay = ms),
    downloads: () => requests.filter((r) => r.path.startsWith("/cdn/") && r.method === "GET"),
    close: async () => {
      for (const server of [hub, cdn]) {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    },
  };
}

/** A stand-in Hub for the tests of one file (HF_ENDPOINT points at it) and a cache folder of their own. */
export function useStandInHub(repos: Record<string, StandInRepo>): { hub: () => StandInHub; cacheDir: () => string } {
  let hub: StandInHub | undefined;
  let cacheDir: string | undefined;
  beforeAll(async () => {
    hub = await startStandInHub(repos);
    process.env.HF_ENDPOINT = hub.url;
    cacheDir = mkdtempSync(join(tmpdir(), "llama-napi-hub-"));
  });
  afterAll(async () => {
    await hub?.close();
    if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error("the stand-in hub starts in beforeAll");
    return value;
  };
  return { hub: () => started(hub), cacheDir: () => started(cacheDir) };
}
