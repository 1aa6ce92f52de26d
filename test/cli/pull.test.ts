// `llama-napi pull` and `llama-napi cache` against a stand-in Hub, and a command's -m taking an hf: name.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { modelPath, ONCE_UPON_A_TIME_GREEDY } from "../helpers.js";
import { useStandInHub, type StandInHub } from "../hub/stand-in-hub.js";
import { run } from "./run-cli.js";

const stories = readFileSync(modelPath("stories260K.gguf"));
const tiny = readFileSync(modelPath("llama-2-tiny-random.gguf"));
const standIn = useStandInHub({ "tester/stories": { files: { "stories260K-Q8_0.gguf": stories, "tiny-F16.gguf": tiny } } });
let cacheDir: string;
let hub: StandInHub;
beforeAll(() => {
  [hub, cacheDir] = [standIn.hub(), standIn.cacheDir()];
});

describe("llama-napi pull and cache", () => {
  it("pulls into the cache, printing the path on stdout and plain progress lines on a pipe", async () => {
    hub.slowDown(5);
    const pulled = await run(["pull", "hf:tester/stories:Q8_0", "--cache-dir", cacheDir]).finally(() => hub.slowDown(0));
    expect(pulled.code).toBe(0);
    expect(pulled.stdout).toBe(`${join(cacheDir, "models--tester--stories", "snapshots", hubCommit(), "stories260K-Q8_0.gguf")}\n`);
    const lines = pulled.stderr.trim().split("\n");
    expect(lines.at(-1)).toMatch(/^stories260K-Q8_0\.gguf: 100%, 1\.13 MiB \/ 1\.13 MiB, [\d.]+ [KMG]?i?B\/s, 0s left$/);
    expect(lines.length).toBeGreaterThan(1);
  });

  it("draws one bar with bytes, rate and time left on a terminal", async () => {
    const pulled = await run(["pull", "hf:tester/stories/tiny-F16.gguf", "--cache-dir", cacheDir], { stderrTty: true });
    expect(pulled.code).toBe(0);
    expect(pulled.stderr).toMatch(/\rtiny-F16\.gguf \[#+\] 100% 1\.67 MiB \/ 1\.67 MiB, .*\/s, 0s left/);
    expect(pulled.stderr.endsWith("\r\x1b[2K")).toBe(true);
  });

  it("lists the cache with sizes, as text and as JSON", async () => {
    const listed = await run(["cache", "--cache-dir", cacheDir]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain("tester/stories    2.80 MiB");
    expect(listed.stdout).toMatch(/ {2}[0-9a-f]{8} \(main\) {2}tiny-F16\.gguf {2}1\.67 MiB\n/);
    expect(listed.stdout).toMatch(/1 repository, 2\.80 MiB in /);
    const json = JSON.parse((await run(["cache", "--cache-dir", cacheDir, "--json"])).stdout) as { repos: Array<{ repoId: string; revisions: Array<{ files: unknown[] }> }> };
    expect(json.repos[0]?.revisions[0]?.files).toHaveLength(2);
    expect((await run(["cache", "--cache-dir", join(cacheDir, "none")])).stdout).toMatch(/^No models in /);
  });

  it("fails with a typed message and exit code 1 for a missing model, 2 for a name that is not the Hub's", async () => {
    const missing = await run(["pull", "hf:tester/stories:Q3_K_S", "--cache-dir", cacheDir]);
    expect([missing.code, missing.stdout]).toEqual([1, ""]);
    expect(missing.stderr).toMatch(/no GGUF tagged Q3_K_S.*tiny-F16\.gguf/);
    expect((await run(["pull", "./model.gguf"])).code).toBe(2);
    expect((await run(["pull"])).code).toBe(2);
  });

  it("lets complete's -m take an hf: name", async () => {
    process.env.HF_HUB_CACHE = cacheDir;
    try {
      const done = await run(["complete", "-m", "hf:tester/stories:Q8_0", "-p", "Once upon a time", "-n", "12", "--temp", "0", "-t", "1", "-c", "128"]);
      expect(done.code).toBe(0);
      expect(done.stdout.startsWith(ONCE_UPON_A_TIME_GREEDY.slice(0, 20))).toBe(true);
    } finally {
      delete process.env.HF_HUB_CACHE;
    }
  });
});

function hubCommit(): string {
  return readFileSync(join(cacheDir, "models--tester--stories", "refs", "main"), "utf8");
}
