// Downloads that cannot leave a broken model: a cut connection resumes with a Range request, an
// abort leaves only a partial file (resumed next time), two processes fetching one file at once
// fetch it once, split GGUFs come whole and load, and a cache written by huggingface_hub's layout
// is used as is (and ours reads back through @huggingface/hub's own cache scan).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { scanCacheDir } from "@huggingface/hub";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Llama, resolveModelFile } from "../../lib/index.js";
import { llamaCppTool } from "../llama-cpp-tools.js";
import { modelPath, ONCE_UPON_A_TIME_GREEDY, repoRoot, runNodeChild } from "../helpers.js";
import { startStandInHub, type StandInHub } from "./stand-in-hub.js";

const stories = readFileSync(modelPath("stories260K.gguf"));
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("hex");
const blobOf = (cacheDir: string, data: Buffer) => join(cacheDir, "models--tester--stories", "blobs", sha256(data));

let hub: StandInHub;
let work: string;
let shards: Record<string, Buffer>;
const newCache = (): string => mkdtempSync(join(work, "cache-"));

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "llama-napi-download-"));
  execFileSync(llamaCppTool("llama-gguf-split"), ["--split", "--split-max-tensors", "20", modelPath("stories260K.gguf"), join(work, "stories")], { stdio: "ignore" });
  shards = Object.fromEntries(readdirSync(work).map((name) => [`split/${name}`, readFileSync(join(work, name))]));
  expect(Object.keys(shards)).toHaveLength(3);
  hub = await startStandInHub({ "tester/stories": { files: { "stories260K-Q8_0.gguf": stories, ...shards } } });
  process.env.HF_ENDPOINT = hub.url;
  delete process.env.HF_HUB_OFFLINE;
});
afterAll(async () => {
  await hub?.close();
  rmSync(work, { recursive: true, force: true });
});

describe("downloads", () => {
  it("resume with a Range request where a connection broke, and check the result", async () => {
    const cacheDir = newCache();
    const half = Math.floor(stories.length / 2);
    hub.cutNextDownloadAfter(half);
    const before = hub.downloads().length;
    const path = await resolveModelFile("hf:tester/stories:Q8_0", { cacheDir });
    expect(readFileSync(path).equals(stories)).toBe(true);
    const fetched = hub.downloads().slice(before);
    expect(fetched.map((d) => d.range)).toEqual([null, `bytes=${half}-`]);
  });

  it("leave nothing that looks complete when aborted, and go on from there on the next call", async () => {
    const cacheDir = newCache();
    hub.slowDown(20);
    const controller = new AbortController();
    let seen = 0;
    const aborted = resolveModelFile("hf:tester/stories:Q8_0", {
      cacheDir,
      signal: controller.signal,
      onDownloadProgress: ({ downloaded }) => {
        seen = downloaded;
        if (downloaded > 200_000) controller.abort();
      },
    });
    await expect(aborted).rejects.toMatchObject({ code: "ABORTED" });
    hub.slowDown(0);
    const blob = blobOf(cacheDir, stories);
    expect(existsSync(blob)).toBe(false);
    const kept = statSync(`${blob}.incomplete`).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(stories.length);
    expect(seen).toBeLessThan(stories.length);
    expect(readdirSync(join(cacheDir, "models--tester--stories"))).not.toContain("snapshots");
    const before = hub.downloads().length;
    const path = await resolveModelFile("hf:tester/stories:Q8_0", { cacheDir });
    expect(readFileSync(path).equals(stories)).toBe(true);
    expect(hub.downloads().slice(before).map((d) => d.range)).toEqual([`bytes=${kept}-`]);
    expect(existsSync(`${blob}.incomplete`)).toBe(false);
  });

  it("fetch a file once when two processes ask for it at the same time", async () => {
    execFileSync(process.execPath, [join(repoRoot, "scripts", "build-ts.mjs")], { stdio: "pipe" });
    const cacheDir = newCache();
    // About 3 s of download: the second process starts well within it.
    hub.slowDown(40);
    const script = `require(${JSON.stringify(join(repoRoot, "dist", "cjs", "hub", "resolve.js"))})
      .resolveModelFile("hf:tester/stories:Q8_0", { cacheDir: ${JSON.stringify(cacheDir)} })
      .then((path) => console.log(path), (err) => { console.error(err); process.exit(1); })`;
    const before = hub.downloads().length;
    try {
      const [a, b] = await Promise.all([runNodeChild(["-e", script]), runNodeChild(["-e", script])]);
      expect([a.code, b.code, a.stderr, b.stderr]).toEqual([0, 0, "", ""]);
      expect(a.stdout).toBe(b.stdout);
      expect(readFileSync(a.stdout.trim()).equals(stories)).toBe(true);
    } finally {
      hub.slowDown(0);
    }
    expect(hub.downloads().length - before).toBe(1);
    expect(readdirSync(join(cacheDir, "models--tester--stories", "blobs"))).toEqual([sha256(stories)]);
  });

  it("take over a lock its process left behind when it died", async () => {
    const cacheDir = newCache();
    const dead = await runNodeChild(["-e", "console.log(process.pid)"]);
    const lockFolder = join(cacheDir, ".locks", "models--tester--stories");
    mkdirSync(lockFolder, { recursive: true });
    writeFileSync(join(lockFolder, `${sha256(stories)}.llama-napi.lock`), JSON.stringify({ pid: Number(dead.stdout), host: hostname(), id: "gone" }));
    const path = await resolveModelFile("hf:tester/stories:Q8_0", { cacheDir });
    expect(readFileSync(path).equals(stories)).toBe(true);
    expect(readdirSync(lockFolder)).toEqual([`${sha256(stories)}.verified`]);
  });

  it("fetch every part of a split GGUF, which then loads and generates as the whole file does", async () => {
    const cacheDir = newCache();
    const path = await resolveModelFile({ repoId: "tester/stories", filename: "split/stories-*.gguf" }, { cacheDir });
    expect(path).toMatch(/split[/\\]stories-00001-of-00003\.gguf$/);
    const folder = join(path, "..");
    expect(readdirSync(folder).sort()).toEqual(["stories-00001-of-00003.gguf", "stories-00002-of-00003.gguf", "stories-00003-of-00003.gguf"]);
    process.env.HF_HUB_OFFLINE = "1";
    try {
      expect(await resolveModelFile("hf:tester/stories/split/stories-00001-of-00003.gguf", { cacheDir })).toBe(path);
    } finally {
      delete process.env.HF_HUB_OFFLINE;
    }
    const llm = await Llama.load({ modelPath: path, nCtx: 128, nThreads: 1 });
    try {
      const { choices } = await llm.createCompletion("Once upon a time", { maxTokens: 12, temperature: 0 });
      expect(ONCE_UPON_A_TIME_GREEDY.startsWith(choices[0]!.text)).toBe(true);
    } finally {
      await llm.dispose();
    }
  });
});

describe("the cache shared with huggingface_hub", () => {
  it("uses a model laid out by huggingface_hub as is, and ours reads back through @huggingface/hub's scan", async () => {
    const cacheDir = newCache();
    // As huggingface_hub leaves it: the blob, a relative link in the snapshot, the ref.
    const repo = join(cacheDir, "models--tester--stories");
    const commit = createHash("sha1").update("tester/stories").digest("hex");
    mkdirSync(join(repo, "blobs"), { recursive: true });
    mkdirSync(join(repo, "snapshots", commit), { recursive: true });
    mkdirSync(join(repo, "refs"));
    writeFileSync(join(repo, "blobs", sha256(stories)), stories);
    symlinkSync(join("..", "..", "blobs", sha256(stories)), join(repo, "snapshots", commit, "stories260K-Q8_0.gguf"));
    writeFileSync(join(repo, "refs", "main"), commit);
    const before = hub.downloads().length;
    expect(await resolveModelFile("hf:tester/stories:Q8_0", { cacheDir })).toBe(join(repo, "snapshots", commit, "stories260K-Q8_0.gguf"));
    expect(hub.downloads().length).toBe(before);

    // Our cache as @huggingface/hub (a port of huggingface_hub's scan_cache_dir) reads it; its scan
    // does not descend into a snapshot's subfolders, so the split model's parts are not in it.
    await resolveModelFile("hf:tester/stories/split/stories-00002-of-00003.gguf", { cacheDir });
    const scan = await scanCacheDir(cacheDir);
    expect(scan.warnings).toEqual([]);
    expect(scan.repos.map((r) => r.id.name)).toEqual(["tester/stories"]);
    const [revision] = scan.repos[0]?.revisions ?? [];
    expect(revision).toMatchObject({ commitOid: commit, refs: ["main"] });
    expect(revision?.files.map((f) => [f.path, f.blob.size])).toEqual([[join(repo, "snapshots", commit, "stories260K-Q8_0.gguf"), stories.length]]);
  });
});
