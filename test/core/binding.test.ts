// Loading the addon: importing the library loads nothing, and a binary that cannot run here (built
// for another architecture, missing, or with no CPU variant for this CPU) gives one NO_BINARY
// LlamaError at the first native use that names the platform and the fixes: never a crash or SIGILL.
import { spawnSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modelPath, repoRoot } from "../helpers.js";

const dist = join(repoRoot, "dist", "cjs", "index.js");
const x64Prebuild = join(repoRoot, "prebuilds", `${process.platform}-${process.arch}`);
const foreignAddon = join(repoRoot, "prebuilds", process.arch === "arm64" ? "linux-x64" : "linux-arm64", "node.napi.glibc.node");

/** Requires the library with LLAMA_NAPI_BINARY set, then tries to load a model; prints what happened. */
function attempt(binary: string): { imported: boolean; code?: string; message?: string; sameErrorTwice?: boolean; status: number | null } {
  const script = `
    const lib = require(${JSON.stringify(dist)});
    (async () => {
      const errors = [];
      for (let i = 0; i < 2; i++) {
        try { await lib.Llama.load({ modelPath: ${JSON.stringify(modelPath("stories260K.gguf"))} }); }
        catch (e) { errors.push(e); }
      }
      console.log(JSON.stringify({ imported: true, code: errors[0]?.code, message: errors[0]?.message,
        isLlamaError: errors[0] instanceof lib.LlamaError, sameErrorTwice: errors[0] === errors[1] }));
    })();`;
  const run = spawnSync(process.execPath, ["-e", script], { env: { ...process.env, LLAMA_NAPI_BINARY: binary }, encoding: "utf8", timeout: 60_000 });
  if (run.status !== 0) return { imported: false, status: run.status, message: run.stderr };
  return { ...JSON.parse(run.stdout.trim().split("\n").pop()!), status: run.status };
}

/** A copy of this machine's CPU prebuild in `folder`, without its CPU variants (or a GPU build). */
function withoutCpuVariants(folder: string): string {
  rmSync(folder, { recursive: true, force: true });
  cpSync(x64Prebuild, folder, { recursive: true, filter: (source) => !/[/\\](cuda|libggml-cpu-[^/\\]*)$/.test(source) });
  return folder;
}

describe("loading the addon", () => {
  let scratch: string;
  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), "llama-napi-binding-"));
  });
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it("a binary built for another architecture: NO_BINARY naming both architectures and the fixes", () => {
    expect(existsSync(foreignAddon), `${foreignAddon} (npm run build:prebuild -- --arch arm64)`).toBe(true);
    const result = attempt(foreignAddon);
    expect(result).toMatchObject({ imported: true, code: "NO_BINARY", isLlamaError: true, sameErrorTwice: true });
    expect(result.message).toContain(`built for ${process.arch === "arm64" ? "x64" : "arm64"}, not ${process.arch}`);
    expect(result.message).toContain(`${process.platform}-${process.arch} (glibc), Node.js ${process.version} (ABI ${process.versions.modules})`);
    expect(result.message).toContain("npx llama-napi build");
    expect(result.message).toContain("npm approve-scripts llama-napi && npm rebuild llama-napi");
  });

  it("a portable prebuild without the CPU variant this CPU needs: NO_BINARY listing what is there, not a crash", () => {
    const folder = withoutCpuVariants(join(scratch, "no-variants"));
    const result = attempt(join(folder, "node.napi.glibc.node"));
    expect(result).toMatchObject({ imported: true, code: "NO_BINARY" });
    expect(result.message).toContain(`none of its CPU variants runs on this CPU (none present in ${folder})`);
  });

  it("a portable prebuild whose only CPU variant cannot load here (another architecture's) is passed over the same way", () => {
    const folder = withoutCpuVariants(join(scratch, "foreign-variant"));
    // An arm64 CPU variant in an x86-64 folder: ggml's loader cannot even open it.
    copyFileSync(join(foreignAddon, "..", "libggml-cpu-armv8.0_1.so"), join(folder, "libggml-cpu-armv8.0_1.so"));
    const result = attempt(join(folder, "node.napi.glibc.node"));
    expect(result).toMatchObject({ imported: true, code: "NO_BINARY" });
    expect(result.message).toContain("none of its CPU variants runs on this CPU (libggml-cpu-armv8.0_1.so in");
  });

  it("a missing file: NO_BINARY naming it", () => {
    const result = attempt(join(scratch, "nothing.node"));
    expect(result).toMatchObject({ imported: true, code: "NO_BINARY" });
    expect(result.message).toContain(`LLAMA_NAPI_BINARY=${join(scratch, "nothing.node")}: not found`);
  });
});
