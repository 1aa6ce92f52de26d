// Models by name from a stand-in Hub: which file a name picks, the cache laid out as Python's
// huggingface_hub lays it out, a second call that downloads nothing, offline mode, gated repositories.
import { createHash } from "node:crypto";
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { listCachedModels, resolveModelFile, type DownloadProgress } from "../../lib/index.js";
import { pickProjector } from "../../lib/hub/spec.js";
import { modelPath } from "../helpers.js";
import { GOOD_TOKEN, startStandInHub, type StandInHub } from "./stand-in-hub.js";

const stories = readFileSync(modelPath("stories260K.gguf"));
const tiny = readFileSync(modelPath("llama-2-tiny-random.gguf"));
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("hex");
const COMMIT = "0123456789abcdef0123456789abcdef01234567";

let hub: StandInHub;
let cacheDir: string;
const cacheDirs: string[] = [];

beforeAll(async () => {
  hub = await startStandInHub({
    "tester/stories": {
      commit: COMMIT,
      files: {
        "README.md": Buffer.from("# stories\n"),
        "stories260K-Q8_0.gguf": stories,
        "stories260K-F16.gguf": tiny,
        "sub/stories260K-Q4_K_M.gguf": stories,
        "mmproj-stories-F16.gguf": tiny,
      },
    },
    "tester/gated": { gated: true, files: { "model-Q8_0.gguf": stories } },
  });
  process.env.HF_ENDPOINT = hub.url;
  delete process.env.HF_TOKEN;
  delete process.env.HF_HUB_OFFLINE;
});
afterAll(async () => {
  await hub.close();
});

function freshCache(): string {
  cacheDir = mkdtempSync(join(tmpdir(), "llama-napi-hub-"));
  cacheDirs.push(cacheDir);
  return cacheDir;
}
afterEach(() => {
  delete process.env.HF_HUB_OFFLINE;
  for (const dir of cacheDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("which file a name picks", () => {
  it("takes an exact path, a glob, a quantization tag (any case), or the repository's Q4_K_M", async () => {
    freshCache();
    const folder = join(cacheDir, "models--tester--stories", "snapshots", COMMIT);
    expect(await resolveModelFile("hf:tester/stories/stories260K-F16.gguf", { cacheDir })).toBe(join(folder, "stories260K-F16.gguf"));
    expect(await resolveModelFile({ repoId: "tester/stories", filename: "*Q8_0.gguf" }, { cacheDir })).toBe(join(folder, "stories260K-Q8_0.gguf"));
    expect(await resolveModelFile("hf:tester/stories:q8_0", { cacheDir })).toBe(join(folder, "stories260K-Q8_0.gguf"));
    expect(await resolveModelFile("hf:tester/stories", { cacheDir })).toBe(join(folder, "sub", "stories260K-Q4_K_M.gguf"));
  });

  it("names every candidate when a glob matches several files, and what the repository holds when none", async () => {
    freshCache();
    const downloads = hub.downloads().length;
    const several = resolveModelFile({ repoId: "tester/stories", filename: "*.gguf" }, { cacheDir });
    await expect(several).rejects.toMatchObject({ code: "AMBIGUOUS_MODEL", message: expect.stringContaining("stories260K-Q8_0.gguf") });
    await expect(several).rejects.toThrow(/stories260K-F16\.gguf/);
    const none = resolveModelFile("hf:tester/stories:IQ2_XS", { cacheDir });
    await expect(none).rejects.toMatchObject({ code: "MODEL_NOT_FOUND", message: expect.stringContaining("stories260K-F16.gguf") });
    await expect(resolveModelFile("hf:tester/stories/nope.gguf", { cacheDir })).rejects.toMatchObject({ code: "MODEL_NOT_FOUND", message: expect.stringContaining("nope.gguf") });
    await expect(resolveModelFile("hf:tester/missing:Q8_0", { cacheDir })).rejects.toMatchObject({ code: "MODEL_NOT_FOUND", message: expect.stringContaining("tester/missing") });
    await expect(resolveModelFile("hf:tester/stories:Q8_0", { cacheDir, revision: "v9" })).rejects.toMatchObject({ code: "MODEL_NOT_FOUND", message: expect.stringContaining("v9") });
    expect(hub.downloads().length).toBe(downloads);
  });

  it("rejects malformed names and options before asking the Hub", async () => {
    await expect(resolveModelFile("hf:justone")).rejects.toThrow(TypeError);
    await expect(resolveModelFile("hf:a/b/../../etc/passwd")).rejects.toThrow(/relative path inside the repository/);
    await expect(resolveModelFile({ repoId: "a--b/c", filename: "x.gguf" })).rejects.toThrow(/owner\/name/);
    await expect(resolveModelFile("hf:a/b:Q4", { token: 3 } as never)).rejects.toThrow(/options.token/);
    await expect(resolveModelFile("hf:a/b:Q4", { revision: "../../x" })).rejects.toThrow(/revision must be a relative path/);
    expect(await resolveModelFile("/some/local/model.gguf")).toBe("/some/local/model.gguf");
  });

  it("takes no file name from a hostile Hub's headers", async () => {
    const hostile = createServer((_req, res) => {
      res.writeHead(200, { "X-Repo-Commit": "../../../commit", ETag: '"../../../../evil"', "Content-Length": 4 });
      res.end("evil");
    });
    await new Promise<void>((done) => hostile.listen(0, "127.0.0.1", done));
    process.env.HF_ENDPOINT = `http://127.0.0.1:${(hostile.address() as AddressInfo).port}`;
    try {
      await expect(resolveModelFile("hf:tester/stories/x.gguf", { cacheDir: freshCache() })).rejects.toMatchObject({ code: "DOWNLOAD_FAILED" });
      expect(readdirSync(cacheDir)).toEqual([]);
    } finally {
      process.env.HF_ENDPOINT = hub.url;
      hostile.close();
    }
  });
});

describe("a model's projector", () => {
  it("is the mmproj file in the model's folder or above, the deepest, then the closest quantization", () => {
    const files = ["mmproj-f16.gguf", "mmproj-Q8_0.gguf", "q4/model-Q4_K_M.gguf", "q4/mmproj-Q4_0.gguf", "other/mmproj-Q4_K_M.gguf", "model-Q8_0.gguf", "README.md"];
    expect(pickProjector("q4/model-Q4_K_M.gguf", files)).toBe("q4/mmproj-Q4_0.gguf");
    expect(pickProjector("model-Q8_0.gguf", files)).toBe("mmproj-Q8_0.gguf");
    expect(pickProjector("model-F16.gguf", files)).toBe("mmproj-f16.gguf");
    expect(pickProjector("model-Q8_0.gguf", ["model-Q8_0.gguf", "sub/mmproj-f16.gguf"])).toBeUndefined();
  });
});

describe("the cache", () => {
  it("is laid out as huggingface_hub's: blobs by SHA-256, snapshot links, refs", async () => {
    freshCache();
    const downloads = hub.downloads().length;
    const seen: DownloadProgress[] = [];
    const path = await resolveModelFile("hf:tester/stories:Q8_0", { cacheDir, onDownloadProgress: (p) => seen.push(p) });
    const repo = join(cacheDir, "models--tester--stories");
    expect(readFileSync(join(repo, "refs", "main"), "utf8")).toBe(COMMIT);
    expect(readdirSync(join(repo, "blobs"))).toEqual([sha256(stories)]);
    expect(lstatSync(path).isSymbolicLink()).toBe(true);
    expect(readlinkSync(path)).toBe(join("..", "..", "blobs", sha256(stories)));
    expect(readFileSync(path).equals(stories)).toBe(true);
    expect(seen.at(-1)).toEqual({ file: "stories260K-Q8_0.gguf", downloaded: stories.length, total: stories.length });
    // A link in a subfolder reaches up one more level.
    const nested = await resolveModelFile("hf:tester/stories/sub/stories260K-Q4_K_M.gguf", { cacheDir });
    expect(readlinkSync(nested)).toBe(join("..", "..", "..", "blobs", sha256(stories)));
    // Same bytes, one blob: the second file downloaded nothing.
    expect(hub.downloads().length).toBe(downloads + 1);
    const [listed] = await listCachedModels(cacheDir);
    expect(listed).toMatchObject({ repoId: "tester/stories", size: stories.length });
    expect(listed?.revisions).toEqual([
      { commit: COMMIT, refs: ["main"], files: [{ path: "stories260K-Q8_0.gguf", size: stories.length }, { path: "sub/stories260K-Q4_K_M.gguf", size: stories.length }] },
    ]);
  });

  it("downloads nothing the second time, and nothing at all offline", async () => {
    freshCache();
    const first = await resolveModelFile("hf:tester/stories:Q8_0", { cacheDir });
    const before = hub.downloads().length;
    expect(await resolveModelFile("hf:tester/stories:Q8_0", { cacheDir })).toBe(first);
    expect(hub.downloads().length).toBe(before);
    process.env.HF_HUB_OFFLINE = "1";
    const asked = hub.requests.length;
    expect(await resolveModelFile("hf:tester/stories:Q8_0", { cacheDir })).toBe(first);
    expect(await resolveModelFile({ repoId: "tester/stories", filename: "*Q8_0.gguf" }, { cacheDir })).toBe(first);
    await expect(resolveModelFile("hf:tester/stories:F16", { cacheDir })).rejects.toMatchObject({ code: "NOT_CACHED" });
    await expect(resolveModelFile("hf:tester/other:F16", { cacheDir })).rejects.toMatchObject({ code: "NOT_CACHED" });
    expect(hub.requests.length).toBe(asked);
  });

  it("resolves offline with the Hub gone: a path, a glob, the default pick, all from the snapshot", async () => {
    freshCache();
    const gone = await startStandInHub({ "tester/brief": { files: { "a-Q8_0.gguf": stories, "b-F16.gguf": tiny } } });
    process.env.HF_ENDPOINT = gone.url;
    try {
      const path = await resolveModelFile("hf:tester/brief:Q8_0", { cacheDir });
      await gone.close();
      process.env.HF_HUB_OFFLINE = "1";
      expect(await resolveModelFile("hf:tester/brief/a-Q8_0.gguf", { cacheDir })).toBe(path);
      expect(await resolveModelFile({ repoId: "tester/brief", filename: "a-*" }, { cacheDir })).toBe(path);
      expect(readFileSync(await resolveModelFile("hf:tester/brief", { cacheDir })).equals(stories)).toBe(true);
      await expect(resolveModelFile("hf:tester/brief:F16", { cacheDir })).rejects.toMatchObject({ code: "NOT_CACHED", message: expect.stringContaining("tester/brief:F16") });
    } finally {
      process.env.HF_ENDPOINT = hub.url;
      await gone.close();
    }
  });

  it("fetches a truncated or altered cached blob again, and never returns it", async () => {
    freshCache();
    const path = await resolveModelFile("hf:tester/stories:Q8_0", { cacheDir });
    const blob = join(cacheDir, "models--tester--stories", "blobs", sha256(stories));
    truncateSync(blob, 1000);
    const before = hub.downloads().length;
    expect(await resolveModelFile("hf:tester/stories:Q8_0", { cacheDir })).toBe(path);
    expect(readFileSync(path).equals(stories)).toBe(true);
    expect(hub.downloads().length).toBe(before + 1);
    // Same size, one byte changed: the hash tells.
    const altered = Buffer.from(stories);
    altered[5000] = (altered[5000] ?? 0) ^ 0xff;
    writeFileSync(blob, altered);
    process.env.HF_HUB_OFFLINE = "1";
    await expect(resolveModelFile("hf:tester/stories:Q8_0", { cacheDir })).rejects.toMatchObject({ code: "NOT_CACHED", message: expect.stringContaining("damaged") });
    delete process.env.HF_HUB_OFFLINE;
    expect(readFileSync(await resolveModelFile("hf:tester/stories:Q8_0", { cacheDir })).equals(stories)).toBe(true);
    expect(statSync(blob).size).toBe(stories.length);
  });

  it("serves from the cache when the Hub cannot be reached, and says so when the cache cannot", async () => {
    freshCache();
    const path = await resolveModelFile("hf:tester/stories:Q8_0", { cacheDir });
    process.env.HF_ENDPOINT = "http://127.0.0.1:9";
    try {
      expect(await resolveModelFile("hf:tester/stories:Q8_0", { cacheDir })).toBe(path);
      await expect(resolveModelFile("hf:tester/stories:F16", { cacheDir })).rejects.toMatchObject({ code: "DOWNLOAD_FAILED", message: expect.stringContaining("cannot reach") });
    } finally {
      process.env.HF_ENDPOINT = hub.url;
    }
  });
});

describe("a gated repository", () => {
  it("needs a token, says so without printing one, and downloads with it", async () => {
    freshCache();
    await expect(resolveModelFile("hf:tester/gated:Q8_0", { cacheDir })).rejects.toMatchObject({ code: "AUTH_REQUIRED", message: expect.stringMatching(/gated.*token/) });
    const wrong = "hf_notTheRightOne";
    const denied = await resolveModelFile("hf:tester/gated:Q8_0", { cacheDir, token: wrong }).catch((err: Error) => err);
    expect(denied).toMatchObject({ code: "AUTH_REQUIRED" });
    expect(String((denied as Error).message)).not.toContain(wrong);
    const path = await resolveModelFile("hf:tester/gated:Q8_0", { cacheDir, token: GOOD_TOKEN });
    expect(readFileSync(path).equals(stories)).toBe(true);
    // The token went to the Hub, never to the CDN.
    expect(hub.requests.filter((r) => r.path.startsWith("/cdn/") && r.authorization !== null)).toEqual([]);
    expect(hub.requests.some((r) => r.path.startsWith("/tester/gated/resolve/") && r.authorization === `Bearer ${GOOD_TOKEN}`)).toBe(true);
    // HF_TOKEN serves as well.
    process.env.HF_TOKEN = GOOD_TOKEN;
    try {
      expect(await resolveModelFile("hf:tester/gated:Q8_0", { cacheDir: freshCache() })).toMatch(/model-Q8_0\.gguf$/);
    } finally {
      delete process.env.HF_TOKEN;
    }
  });
});
