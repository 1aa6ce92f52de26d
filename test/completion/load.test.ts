// Llama.load and Llama.fromPretrained with models named on a stand-in Hub: the model and the draft
// come from the Hub cache and generate as the local files do.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Llama, type DownloadProgress } from "../../lib/index.js";
import { modelPath, ONCE_UPON_A_TIME_GREEDY } from "../helpers.js";
import { useStandInHub } from "../hub/stand-in-hub.js";
import { projectorModel } from "../fixtures.js";

const stories = readFileSync(modelPath("stories260K.gguf"));
const hub = useStandInHub({ "tester/stories": { files: { "stories260K-Q8_0.gguf": stories, "draft/stories260K-F32.gguf": stories } } });

const greedy = async (llm: Llama): Promise<string> => (await llm.createCompletion("Once upon a time", { maxTokens: 16, temperature: 0 })).choices[0]!.text;

describe("models by name", () => {
  it("Llama.fromPretrained takes a repository and a glob, reports the download, and loads the cached file", async () => {
    const seen: DownloadProgress[] = [];
    const llm = await Llama.fromPretrained({ repoId: "tester/stories", filename: "*Q8_0.gguf", cacheDir: hub.cacheDir(), nCtx: 128, nThreads: 1, onDownloadProgress: (p) => seen.push(p) });
    try {
      expect(llm.modelPath.startsWith(join(hub.cacheDir(), "models--tester--stories", "snapshots"))).toBe(true);
      expect(ONCE_UPON_A_TIME_GREEDY.startsWith(await greedy(llm))).toBe(true);
      expect(seen.at(-1)).toEqual({ file: "stories260K-Q8_0.gguf", downloaded: stories.length, total: stories.length });
    } finally {
      await llm.dispose();
    }
  });

  it("Llama.load takes hf: names for the model and the draft", async () => {
    const llm = await Llama.load({ modelPath: "hf:tester/stories:Q8_0", draft: { modelPath: "hf:tester/stories/draft/stories260K-F32.gguf", nDraft: 4 }, cacheDir: hub.cacheDir(), nCtx: 128, nThreads: 1 });
    try {
      expect(ONCE_UPON_A_TIME_GREEDY.startsWith(await greedy(llm))).toBe(true);
    } finally {
      await llm.dispose();
    }
  });

  it("Llama.fromPretrained brings the repository's projector, as llama-server's -hf does", async () => {
    const projector = readFileSync(await projectorModel("vision"));
    hub.hub().repos.set("tester/vl", { files: { "vl-Q8_0.gguf": stories, "mmproj-vl-f16.gguf": projector, "mmproj-vl-Q8_0.gguf": projector, "other/mmproj-x.gguf": stories } });
    const llm = await Llama.fromPretrained({ repoId: "tester/vl", cacheDir: hub.cacheDir(), nCtx: 128, nThreads: 1 });
    try {
      expect(llm.capabilities).toEqual({ vision: true, audio: false });
      // The closest quantization to the model's: Q8_0's, not F16's.
      expect(llm.options.mmprojPath).toMatch(/mmproj-vl-Q8_0\.gguf$/);
    } finally {
      await llm.dispose();
    }
    const plain = await Llama.fromPretrained({ repoId: "tester/stories", filename: "*Q8_0.gguf", cacheDir: hub.cacheDir(), nCtx: 128, nThreads: 1 });
    expect(plain.capabilities.vision).toBe(false);
    await plain.dispose();
  });

  it("fails with the Hub's typed errors, and checks its options", async () => {
    await expect(Llama.load({ modelPath: "hf:tester/stories:Q2_K", cacheDir: hub.cacheDir() })).rejects.toMatchObject({ code: "MODEL_NOT_FOUND" });
    await expect(Llama.fromPretrained({ repoId: "tester/nothing", cacheDir: hub.cacheDir() })).rejects.toMatchObject({ code: "MODEL_NOT_FOUND" });
    await expect(Llama.fromPretrained({ repoId: "not a repo", cacheDir: hub.cacheDir() })).rejects.toThrow(/options.repoId/);
    await expect(Llama.load({ modelPath: "hf:tester/stories:Q8_0", cacheDir: 5 } as never)).rejects.toThrow(/options.cacheDir/);
    const controller = new AbortController();
    controller.abort();
    await expect(Llama.load({ modelPath: "hf:tester/stories:Q8_0", cacheDir: join(hub.cacheDir(), "other"), signal: controller.signal })).rejects.toMatchObject({ code: "ABORTED" });
  });
});
