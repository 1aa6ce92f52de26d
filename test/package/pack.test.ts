// The published package as a user gets it: `npm pack`, then install the tarball into an empty
// project outside the repository with install scripts disabled and no compiler, make or cmake on
// PATH, so that only the prebuild in the tarball can work: on this x86-64 machine, and on arm64
// through an arm64 Node.js under qemu-user. Needs both prebuilds (`npm test`'s pretest builds them).
import { execFileSync, spawn, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { emulatedNode } from "../../scripts/emulated-node.mjs";
import { freePort, listening, modelPath, repoRoot } from "../helpers.js";

const platformDir = `${process.platform}-${process.arch}`;
const prebuildAddon = join(repoRoot, "prebuilds", platformDir, "node.napi.glibc.node");
const arm64Addon = join(repoRoot, "prebuilds", "linux-arm64", "node.napi.glibc.node");
/** What the tarball may weigh (docs/prebuilds.md): both CPU prebuilds, gzipped. */
const MAX_PACKED_MIB = 20;
const buildTools = ["cc", "c++", "gcc", "g++", "clang", "clang++", "clang-19", "clang++-19", "make", "cmake", "ninja", "nvcc"];

let work: string;
let project: string;
let packedFiles: string[];
let packedBytes: number;
/** PATH for the consumer: a folder holding only `node` and `npm`. */
let env: NodeJS.ProcessEnv;

function runNode(args: string[]): { stdout: string; stderr: string } {
  const result = spawnSync("node", args, { cwd: project, env, encoding: "utf8", timeout: 120_000 });
  if (result.status !== 0) throw new Error(`node ${args[0]} failed (${result.status ?? result.signal}):\n${result.stderr}`);
  return { stdout: result.stdout, stderr: result.stderr };
}

const completion = `
  const { Llama, buildInfo } = llamaNapi;
  const llm = await Llama.load({ modelPath: ${JSON.stringify(modelPath("stories260K.gguf"))}, nCtx: 128, nThreads: 2 });
  const res = await llm.createCompletion("Once upon a time", { maxTokens: 4, temperature: 0 });
  await llm.dispose();
  console.log(JSON.stringify({ text: res.choices[0].text, info: buildInfo() }));`;
const viaRequire = `const llamaNapi = require("llama-napi"); (async () => { ${completion} })();`;
const viaImport = `const llamaNapi = await import("llama-napi"); ${completion}`;

describe("the packed tarball, installed without compilers or install scripts", () => {
  beforeAll(() => {
    for (const addon of [prebuildAddon, arm64Addon]) {
      if (!existsSync(addon)) throw new Error(`no prebuild at ${addon}: run \`npm run build:prebuild\` (with \`-- --arch arm64\`) first`);
    }
    work = mkdtempSync(join(tmpdir(), "llama-napi-pack-"));
    const packed = JSON.parse(
      execFileSync("npm", ["pack", "--json", "--pack-destination", work], { cwd: repoRoot, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }),
    ) as Array<{ filename: string; size: number; files: Array<{ path: string }> }>;
    packedFiles = packed[0]!.files.map((file) => file.path);
    packedBytes = packed[0]!.size;

    const tools = join(work, "bin");
    mkdirSync(tools);
    symlinkSync(process.execPath, join(tools, "node"));
    const npmCli = realpathSync(execFileSync("sh", ["-c", "command -v npm"], { encoding: "utf8" }).trim());
    symlinkSync(npmCli, join(tools, "npm"));
    env = { PATH: tools, HOME: process.env.HOME, TMPDIR: tmpdir() };

    project = join(work, "consumer");
    mkdirSync(project);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true }));
    const install = spawnSync(
      "npm",
      ["install", join(work, packed[0]!.filename), "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"],
      { cwd: project, env, encoding: "utf8" },
    );
    if (install.status !== 0) throw new Error(`npm install failed:\n${install.stderr}`);
  });

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("has no compiler, make or cmake on its PATH", () => {
    const reachable = buildTools.filter((tool) => env.PATH!.split(delimiter).some((dir) => existsSync(join(dir, tool))));
    expect(reachable).toEqual([]);
  });

  it("carries the portable prebuild, every CPU variant, and no build folder", () => {
    expect(packedFiles).toContain(`prebuilds/${platformDir}/node.napi.glibc.node`);
    expect(packedFiles.filter((path) => /libggml-cpu-[\w.]+\.so$/.test(path)).length).toBeGreaterThan(1);
    expect(packedFiles.filter((path) => path.startsWith("build/"))).toEqual([]);
    expect(existsSync(join(project, "node_modules", "llama-napi", "build"))).toBe(false);
  });

  it(`carries the linux-arm64 prebuild with its CPU variants and RPC, no GPU build, and weighs under ${MAX_PACKED_MIB} MiB`, () => {
    expect(packedFiles).toContain("prebuilds/linux-arm64/node.napi.glibc.node");
    expect(packedFiles).toContain("prebuilds/linux-arm64/libggml-rpc.so");
    expect(packedFiles).toContain(`prebuilds/${platformDir}/libggml-rpc.so`);
    const armVariants = packedFiles.filter((path) => /^prebuilds\/linux-arm64\/libggml-cpu-armv[\w.]+\.so$/.test(path));
    expect(armVariants).toContain("prebuilds/linux-arm64/libggml-cpu-armv8.0_1.so");
    expect(armVariants.length).toBeGreaterThan(4);
    expect(packedFiles.filter((path) => path.includes("/cuda/") || path.includes("libggml-cuda"))).toEqual([]);
    expect(packedBytes / 2 ** 20).toBeLessThan(MAX_PACKED_MIB);
  });

  it("runs on arm64: node-gyp-build picks prebuilds/linux-arm64 for an arm64 Node.js (under qemu) and it completes as here", () => {
    const node = emulatedNode("arm64");
    const result = spawnSync(node.command, [...node.args, "-e", viaRequire], { cwd: project, env, encoding: "utf8", timeout: 300_000 });
    expect(result.status, result.stderr).toBe(0);
    const { text, info } = JSON.parse(result.stdout.trim()) as { text: string; info: Record<string, unknown> };
    expect(text).toBe(", there was a");
    expect(info).toMatchObject({
      binaryKind: "cpu",
      binaryPath: join(realpathSync(project), "node_modules", "llama-napi", "prebuilds", "linux-arm64", "node.napi.glibc.node"),
      portable: true,
    });
    expect(String(info.cpuVariant)).toMatch(/^armv/);
  });

  it.each([
    ["require", ["-e", viaRequire]],
    ["import", ["--input-type=module", "-e", viaImport]],
  ])("%s runs a greedy completion on the prebuild", (_via, args) => {
    const { stdout, stderr } = runNode(args);
    const { text, info } = JSON.parse(stdout.trim()) as { text: string; info: Record<string, unknown> };
    expect(text).toBe(", there was a");
    expect(stderr).not.toContain("[llama-napi]");
    expect(info).toMatchObject({
      binaryKind: "cpu",
      binaryPath: join(realpathSync(project), "node_modules", "llama-napi", "prebuilds", platformDir, "node.napi.glibc.node"),
      portable: true,
    });
  });

  it("runs the CPU variant that uses this CPU's widest vector units", () => {
    const info = (JSON.parse(runNode(["-e", viaRequire]).stdout.trim()) as { info: { cpuVariant: string; cpuFeatures: string[] } }).info;
    const flags = new Set(/^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))![1]!.trim().split(/\s+/));
    expect(info.cpuVariant).not.toBe("x64");
    if (flags.has("avx2")) expect(info.cpuFeatures).toContain("AVX2");
    if (flags.has("avx512f")) expect(info.cpuFeatures).toContain("AVX512");
    if (flags.has("amx_int8")) expect(info.cpuFeatures).toContain("AMX_INT8");
  });

  it("serves and uses ggml's RPC backend from the prebuild (llama-napi rpc-server, rpcServers)", async () => {
    const port = await freePort();
    const cli = join(project, "node_modules", "llama-napi", "bin", "llama-napi.js");
    const server = spawn("node", [cli, "rpc-server", "--port", String(port), "--threads", "1"], { cwd: project, env, stdio: "ignore" });
    try {
      await listening(port);
      const split = `const { Llama, buildInfo } = require("llama-napi"); (async () => {
        const llm = await Llama.load({ modelPath: ${JSON.stringify(modelPath("stories260K.gguf"))}, nCtx: 128, nThreads: 2,
          rpcServers: ["127.0.0.1:${port}"], nGpuLayers: 99 });
        const res = await llm.createCompletion("Once upon a time", { maxTokens: 4, temperature: 0 });
        await llm.dispose();
        console.log(JSON.stringify({ text: res.choices[0].text, info: buildInfo() }));
      })();`;
      const { text, info } = JSON.parse(runNode(["-e", split]).stdout.trim()) as { text: string; info: Record<string, unknown> };
      expect(info).toMatchObject({ supportsRpc: true });
      expect(text).toBe(", there was a");
    } finally {
      server.kill("SIGKILL");
    }
  });

  it("passes over a build/Release made for another architecture (node_modules copied across machines) with one log line", () => {
    const release = join(project, "node_modules", "llama-napi", "build", "Release");
    mkdirSync(release, { recursive: true });
    copyFileSync(arm64Addon, join(release, "llama_napi.node"));
    try {
      const { stdout, stderr } = runNode(["-e", viaRequire]);
      expect((JSON.parse(stdout.trim()) as { text: string }).text).toBe(", there was a");
      const logLines = stderr.split("\n").filter((line) => line.includes("[llama-napi]"));
      expect(logLines).toEqual([
        `[llama-napi] build/Release/llama_napi.node is not usable here (built for arm64, not ${process.arch}); using prebuilds/${platformDir}/node.napi.glibc.node`,
      ]);
    } finally {
      rmSync(join(project, "node_modules", "llama-napi", "build"), { recursive: true, force: true });
    }
  });

  it("falls back from a GPU prebuild that finds no GPU to the CPU one, with one log line", () => {
    // A stand-in GPU variant: the CPU prebuild under prebuilds/<platform>/cuda has no CUDA module,
    // so its probe finds no GPU on any machine.
    const installed = join(project, "node_modules", "llama-napi", "prebuilds", platformDir);
    mkdirSync(join(installed, "cuda"));
    for (const file of readdirSync(installed)) {
      if (file !== "cuda") copyFileSync(join(installed, file), join(installed, "cuda", file));
    }
    try {
      const { stdout, stderr } = runNode(["-e", viaRequire]);
      const { text, info } = JSON.parse(stdout.trim()) as { text: string; info: Record<string, unknown> };
      expect(text).toBe(", there was a");
      expect(info).toMatchObject({ binaryKind: "cpu", gpuDevices: [] });
      const logLines = stderr.split("\n").filter((line) => line.includes("[llama-napi]"));
      expect(logLines).toEqual([
        `[llama-napi] the cuda prebuild is not usable here (no GPU device found); using prebuilds/${platformDir}/node.napi.glibc.node`,
      ]);
    } finally {
      rmSync(join(installed, "cuda"), { recursive: true, force: true });
    }
  });

  describe("on a platform without a prebuild, installed without install scripts (npm 12's default)", () => {
    let installed: string;
    beforeAll(() => {
      installed = join(project, "node_modules", "llama-napi");
      renameSync(join(installed, "prebuilds"), join(work, "prebuilds.away"));
    });
    afterAll(() => {
      rmSync(join(installed, "build"), { recursive: true, force: true });
      rmSync(join(installed, "vendor", "llama.cpp"), { recursive: true, force: true });
      renameSync(join(work, "prebuilds.away"), join(installed, "prebuilds"));
    });

    it.each([
      ["require", ["-e", `const l = require("llama-napi"); console.log(typeof l.Llama.load, typeof l.LlamaError)`]],
      ["import", ["--input-type=module", "-e", `const l = await import("llama-napi"); console.log(typeof l.Llama.load, typeof l.LlamaError)`]],
    ])("%s of the package succeeds: nothing native loads at import", (_via, args) => {
      expect(runNode(args).stdout.trim()).toBe("function function");
    });

    it("the first native use rejects with one NO_BINARY LlamaError naming the platform and both fixes", () => {
      const script = `const { Llama, LlamaError } = require("llama-napi");
        Llama.load({ modelPath: ${JSON.stringify(modelPath("stories260K.gguf"))} }).then(
          () => console.log("{}"),
          (e) => console.log(JSON.stringify({ code: e.code, isLlamaError: e instanceof LlamaError, message: e.message })));`;
      const error = JSON.parse(runNode(["-e", script]).stdout.trim()) as { code: string; isLlamaError: boolean; message: string };
      expect(error).toMatchObject({ code: "NO_BINARY", isLlamaError: true });
      expect(error.message).toContain(`${process.platform}-${process.arch} (glibc), Node.js ${process.version} (ABI ${process.versions.modules})`);
      expect(error.message).toContain("Prebuilds in this package: none");
      expect(error.message).toContain("npx llama-napi build");
      expect(error.message).toContain("npm approve-scripts llama-napi && npm rebuild llama-napi");
    });

    it("`llama-napi build` without cmake or a compiler names what is missing", () => {
      const result = spawnSync("node", [join(installed, "bin", "llama-napi.js"), "build"], { cwd: project, env, encoding: "utf8" });
      expect(result.status).toBe(1);
      expect(result.stderr).toContain("llama-napi build: missing cmake");
      expect(result.stderr).toContain("a C++ compiler");
    });

    it("`npx llama-napi build` builds the addon from source and the same app then generates", () => {
      const build = spawnSync("npx", ["llama-napi", "build"], {
        cwd: project,
        env: { ...process.env, LLAMA_NAPI_BINARY: "" },
        encoding: "utf8",
        timeout: 900_000,
      });
      expect(build.status, build.stderr.slice(-2000)).toBe(0);
      expect(build.stdout).toContain(join(realpathSync(installed), "build", "Release", "llama_napi.node"));
      const { text, info } = JSON.parse(runNode(["-e", viaRequire]).stdout.trim()) as { text: string; info: Record<string, unknown> };
      expect(text).toBe(", there was a");
      expect(info).toMatchObject({ binaryKind: "source", portable: false });
    }, 900_000);
  });
});
