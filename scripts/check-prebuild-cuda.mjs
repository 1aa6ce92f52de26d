#!/usr/bin/env node
// Checks the CUDA prebuild (`npm run build:cuda`) on a machine without a GPU, run by hand (the
// build takes about an hour on 2 cores, too slow for CI): which GPU architectures its CUDA module
// carries, as machine code (SASS) or PTX; that the addon loads and reports no GPU; and that the
// package as users install it (llama-napi plus @llama-napi/linux-x64-cuda, from their tarballs,
// install scripts off) falls back to the CPU variants with one line saying why and the same greedy
// tokens. On a machine with a GPU, scripts/gpu-check.mjs is the check.
//   node scripts/check-prebuild-cuda.mjs [MODEL_DIR]      (default ../shared/models)
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { packCuda } from "./pack-cuda.mjs";
import { greedyScript, hostNode, reporter, runScript } from "./prebuild-check.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const model = join(resolve(process.argv[2] ?? join(root, "..", "shared", "models")), "stories260K.gguf");
const platformDir = `${process.platform}-${process.arch}`;
const cudaDir = join(root, "prebuilds", platformDir, "cuda");
const dist = join(root, "dist", "cjs", "index.js");

const checks = reporter();
const { report } = checks;

for (const [what, path] of [
  ["CUDA prebuild (npm run build:cuda)", join(cudaDir, "libggml-cuda.so")],
  ["CPU prebuild (npm run build:prebuild)", join(root, "prebuilds", platformDir, "node.napi.glibc.node")],
  ["model", model],
  ["dist/ (npm run build:ts)", dist],
]) {
  if (!existsSync(path)) {
    console.error(`FAIL ${what} missing: ${path}`);
    process.exit(1);
  }
}

/** The GPU code in a CUDA fat binary: every entry of every fatbin in the file, as sm_XX (SASS) or compute_XX (PTX). */
function cudaArchitectures(file) {
  const data = readFileSync(file);
  const found = new Set();
  for (let at = data.indexOf(Buffer.from([0x50, 0xed, 0x55, 0xba])); at >= 0; at = data.indexOf(Buffer.from([0x50, 0xed, 0x55, 0xba]), at + 4)) {
    const headerSize = data.readUInt16LE(at + 6);
    const end = at + headerSize + Number(data.readBigUInt64LE(at + 8));
    for (let entry = at + headerSize; entry + 32 <= end && entry < data.length; ) {
      const kind = data.readUInt16LE(entry);
      const entryHeader = data.readUInt32LE(entry + 4);
      const size = Number(data.readBigUInt64LE(entry + 8));
      const arch = data.readUInt32LE(entry + 28);
      if ((kind !== 1 && kind !== 2) || entryHeader === 0) break;
      found.add(`${kind === 1 ? "compute" : "sm"}_${arch}`);
      entry += entryHeader + size;
    }
  }
  return [...found].sort();
}

const files = readdirSync(cudaDir);
const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const total = files.reduce((sum, file) => sum + statSync(join(cudaDir, file)).size, 0);
const cudaModule = join(cudaDir, "libggml-cuda.so");
const archs = cudaArchitectures(cudaModule);
console.log(`prebuilds/${platformDir}/cuda: ${files.length} files, ${mib(total)}; libggml-cuda.so ${mib(statSync(cudaModule).size)}`);
report(
  ["compute_75", "sm_80", "sm_90"].every((arch) => archs.includes(arch)),
  `GPU code in libggml-cuda.so: ${archs.join(" ")} (sm_80 machine code also runs on sm_86 and sm_89)`,
);

const greedy = greedyScript(dist, model);
const run = (script, options) => runScript(hostNode, script, { timeout: 300_000, ...options });

const { LLAMA_NAPI_BINARY: _override, ...withoutOverride } = process.env;
const reference = run(greedy, { env: { ...process.env, LLAMA_NAPI_BINARY: join(root, "prebuilds", platformDir, "node.napi.glibc.node") } });
if (reference.error) {
  console.error(`FAIL the CPU prebuild's reference run: ${reference.error}`);
  process.exit(1);
}
const direct = run(greedy, { env: { ...process.env, LLAMA_NAPI_BINARY: join(cudaDir, "node.napi.glibc.node") } });
report(
  !direct.error && direct.gpuDevices.length === 0 && JSON.stringify(direct.tokens) === JSON.stringify(reference.tokens),
  `the CUDA addon loaded directly: ${direct.error ?? `backends ${direct.backends.join(", ")}, GPUs ${JSON.stringify(direct.gpuDevices)}, CPU variant ${direct.cpuVariant}, ${JSON.stringify(direct.tokens) === JSON.stringify(reference.tokens) ? "the CPU prebuild's tokens" : "OTHER tokens"}`}`,
);

// As users get it: both tarballs in an empty project, no install scripts.
const work = mkdtempSync(join(tmpdir(), "llama-napi-cuda-"));
try {
  const [main] = JSON.parse(execFileSync("npm", ["pack", "--json", "--pack-destination", work], { cwd: root, encoding: "utf8" }));
  const cudaTarball = packCuda(work);
  const project = join(work, "app");
  mkdirSync(project);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", private: true }));
  execFileSync("npm", ["install", join(work, main.filename), cudaTarball, "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"], {
    cwd: project,
    stdio: "ignore",
  });
  const installed = run(greedyScript("llama-napi", model), { cwd: project, env: withoutOverride });
  const logLine = installed.stderr?.split("\n").find((line) => line.startsWith("[llama-napi]")) ?? "";
  report(
    !installed.error && installed.binaryKind === "cpu" && JSON.stringify(installed.tokens) === JSON.stringify(reference.tokens) && logLine.includes("the cuda prebuild is not usable here"),
    `installed with @llama-napi/${platformDir}-cuda: ${installed.error ?? `${installed.binaryKind} prebuild, same tokens: ${JSON.stringify(installed.tokens) === JSON.stringify(reference.tokens)}; ${JSON.stringify(logLine)}`}`,
  );
  console.log(`tarballs: ${main.filename} ${mib(main.size)}, ${cudaTarball.split("/").pop()} ${mib(statSync(cudaTarball).size)}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exit(checks.failures === 0 ? 0 : 1);
