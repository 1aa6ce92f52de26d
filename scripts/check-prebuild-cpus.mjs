#!/usr/bin/env node
// Runs the portable prebuild on older x86-64 CPUs, emulated by qemu-user (apt-get install
// qemu-user), and checks that each loads the CPU variant made for it and completes correctly:
//   node scripts/check-prebuild-cpus.mjs [MODEL_DIR]      (default ../shared/models)
// qemu's TCG has no AVX-512 or AMX, so those variants are left to the machines that have them.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const model = join(resolve(process.argv[2] ?? join(root, "..", "shared", "models")), "stories260K.gguf");
const addon = join(root, "prebuilds", `${process.platform}-${process.arch}`, "node.napi.glibc.node");
// qemu CPU model -> the ggml CPU variant that should win on it.
const cpus = [
  ["qemu64", "x64"],
  ["Nehalem", "sse42"],
  ["SandyBridge", "sandybridge"],
  ["Haswell", "haswell"],
];

for (const [what, path] of [["prebuild", addon], ["model", model], ["dist/ (npm run build:ts)", join(root, "dist", "cjs", "index.js")]]) {
  if (!existsSync(path)) {
    console.error(`${what} missing: ${path}`);
    process.exit(1);
  }
}
if (spawnSync("qemu-x86_64", ["--version"]).status !== 0) {
  console.error("qemu-x86_64 not found: apt-get install qemu-user");
  process.exit(1);
}

const completion = `
const { Llama, buildInfo } = require(${JSON.stringify(join(root, "dist", "cjs", "index.js"))});
(async () => {
  const llm = await Llama.load({ modelPath: ${JSON.stringify(model)}, nCtx: 128, nThreads: 1 });
  const res = await llm.createCompletion("Once upon a time", { maxTokens: 4, temperature: 0 });
  await llm.dispose();
  console.log(JSON.stringify({ text: res.choices[0].text, cpuVariant: buildInfo().cpuVariant }));
})();`;

let failures = 0;
for (const [cpu, expected] of cpus) {
  // --jitless: V8's JIT would emit instructions for the host CPU, not the emulated one.
  const run = spawnSync("qemu-x86_64", ["-cpu", cpu, process.execPath, "--jitless", "-e", completion], {
    env: { ...process.env, LLAMA_NAPI_BINARY: addon },
    encoding: "utf8",
    timeout: 600_000,
  });
  const result = run.status === 0 ? JSON.parse(run.stdout.trim().split("\n").pop()) : null;
  const ok = result?.cpuVariant === expected && result?.text === ", there was a";
  if (!ok) failures++;
  console.log(
    `${ok ? "ok  " : "FAIL"} ${cpu.padEnd(12)} expected ${expected.padEnd(12)} got ${result ? JSON.stringify(result) : `exit ${run.status ?? run.signal}: ${run.stderr.trim().split("\n").pop()}`}`,
  );
}
process.exit(failures === 0 ? 0 : 1);
