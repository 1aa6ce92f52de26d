// What the prebuild checks (check-prebuild-arm64.mjs, check-prebuild-cuda.mjs) share: the greedy
// run whose token ids they compare, a runner that takes its last printed line, and the ok/FAIL lines.
import { spawnSync } from "node:child_process";

/**
 * A script for `node -e`: loads `model` through the library `lib` (a path, or "llama-napi" in an
 * app), generates 64 greedy tokens after "Once upon a time" and prints them as JSON with the
 * text, the architecture and what buildInfo() says of the binary.
 */
export function greedyScript(lib, model) {
  return `
const lib = require(${JSON.stringify(lib)});
(async () => {
  const model = await lib.LlamaModel.load(${JSON.stringify(model)});
  const context = await model.createContext({ nCtx: 256, nThreads: 2 });
  const tokens = [];
  for await (const t of lib.generateTokens(context, model.createSampler({ temperature: 0 }), model.tokenize("Once upon a time"), { maxTokens: 64 })) tokens.push(t);
  const text = model.detokenize(tokens);
  await context.dispose();
  await model.dispose();
  const { cpuVariant, cpuFeatures, backends, gpuDevices, binaryKind } = lib.buildInfo();
  console.log(JSON.stringify({ tokens, text, arch: process.arch, cpuVariant, cpuFeatures, backends, gpuDevices, binaryKind }));
})().catch((e) => { console.error(e); process.exit(1); });`;
}

/**
 * Runs `script` with `node` ({ command, args }: this Node.js, or one under qemu) and returns the
 * JSON of its last stdout line, with its stderr and the seconds it took, or { error }.
 */
export function runScript(node, script, { env = process.env, cwd, timeout = 600_000 } = {}) {
  const started = Date.now();
  const run = spawnSync(node.command, [...node.args, "-e", script], { env, cwd, encoding: "utf8", timeout });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (run.status !== 0) return { error: `exit ${run.status ?? run.signal}: ${run.stderr.trim().split("\n").slice(-3).join(" | ")}`, seconds };
  return { ...JSON.parse(run.stdout.trim().split("\n").pop()), stderr: run.stderr, seconds };
}

/** This Node.js, as runScript takes it. */
export const hostNode = { command: process.execPath, args: [] };

/** Prints ok/FAIL lines and counts the failures. */
export function reporter() {
  let failures = 0;
  return {
    report(ok, line) {
      if (!ok) failures++;
      console.log(`${ok ? "ok  " : "FAIL"} ${line}`);
    },
    get failures() {
      return failures;
    },
  };
}
