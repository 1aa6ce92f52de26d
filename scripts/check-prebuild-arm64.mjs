#!/usr/bin/env node
// Runs the linux-arm64 prebuild, not only builds it: an arm64 Node.js under qemu-user loads
// prebuilds/linux-arm64 and must give, token for token, the stories260K greedy completion that this
// x86-64 machine gives, on emulated CPUs from the armv8.0 baseline to SVE2/SME; a CPU that no shipped
// variant fits gets NO_BINARY, not SIGILL; then it splits the model over ggml's RPC backend across
// the two architectures, both ways. `.ci/run` runs it after the
// tests; it fails, never skips, when qemu-user, the arm64 runtime or the arm64 Node.js is missing.
//   node scripts/check-prebuild-arm64.mjs [MODEL_DIR]      (default ../shared/models)
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer, connect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { emulatedNode } from "./emulated-node.mjs";
import { greedyScript, hostNode, reporter, runScript } from "./prebuild-check.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const model = join(resolve(process.argv[2] ?? join(root, "..", "shared", "models")), "stories260K.gguf");
const prebuild = join(root, "prebuilds", "linux-arm64");
const addon = join(prebuild, "node.napi.glibc.node");
const dist = join(root, "dist", "cjs", "index.js");
const cli = join(root, "bin", "llama-napi.js");
// qemu CPU model -> the ggml CPU variant its features call for (null: reported, not asserted).
// cortex-a53 has none of the optional features: it forces the armv8.0 baseline.
const cpus = [
  ["max", null],
  ["a64fx", null],
  ["neoverse-n1", "armv8.2_2"],
  ["cortex-a53", "armv8.0_1"],
];

const started = Date.now();
for (const [what, path] of [
  ["arm64 prebuild (npm run build:prebuild -- --arch arm64)", addon],
  ["RPC module of the arm64 prebuild", join(prebuild, "libggml-rpc.so")],
  ["model", model],
  ["dist/ (npm run build:ts)", dist],
]) {
  if (!existsSync(path)) {
    console.error(`FAIL ${what} missing: ${path}`);
    process.exit(1);
  }
}
let arm64;
try {
  arm64 = (cpu) => emulatedNode("arm64", { cpu });
  arm64();
} catch (error) {
  console.error(`FAIL ${error.message}`);
  process.exit(1);
}

// The completion API with its layers on an rpc-server (or all local when `rpcServer` is null).
const completion = (rpcServer) => `
const lib = require(${JSON.stringify(dist)});
(async () => {
  const llm = await lib.Llama.load({ modelPath: ${JSON.stringify(model)}, nCtx: 256, nThreads: 2,
    ...(${JSON.stringify(rpcServer)} ? { rpcServers: [${JSON.stringify(rpcServer)}], nGpuLayers: 99 } : {}) });
  const res = await llm.createCompletion("Once upon a time", { maxTokens: 32, temperature: 0 });
  await llm.dispose();
  console.log(JSON.stringify({ text: res.choices[0].text, arch: process.arch }));
})().catch((e) => { console.error(e); process.exit(1); });`;

const greedy = greedyScript(dist, model);
const onArm64 = { env: { ...process.env, LLAMA_NAPI_BINARY: addon } };
const checks = reporter();
const { report } = checks;

const reference = runScript(hostNode, greedy);
if (reference.error) {
  console.error(`FAIL the x86-64 reference run: ${reference.error}`);
  process.exit(1);
}
console.log(`x86-64 reference (${reference.cpuVariant}): ${reference.tokens.length} tokens ${JSON.stringify(reference.text.slice(0, 60))}…`);

for (const [cpu, expected] of cpus) {
  const result = runScript(arm64(cpu), greedy, onArm64);
  const same = !result.error && JSON.stringify(result.tokens) === JSON.stringify(reference.tokens);
  const variantOk = !result.error && (expected === null || result.cpuVariant === expected);
  report(
    same && variantOk && result.arch === "arm64",
    `qemu -cpu ${cpu.padEnd(11)} variant ${String(result.cpuVariant ?? "-").padEnd(10)}${expected ? ` (expected ${expected})` : ""} ` +
      `${result.error ?? (same ? "same tokens" : `other tokens: ${JSON.stringify(result.text)}`)} [${result.seconds} s; features ${(result.cpuFeatures ?? []).join(" ")}]`,
  );
}

// A prebuild whose CPU variants all need more than the CPU has (here: only those from armv8.2 on, on
// a cortex-a53) must refuse with NO_BINARY, never run an illegal instruction.
const partial = mkdtempSync(join(tmpdir(), "llama-napi-arm64-"));
try {
  for (const file of readdirSync(prebuild)) {
    if (!/^libggml-cpu-armv8\.[02]_/.test(file)) copyFileSync(join(prebuild, file), join(partial, file));
  }
  const refuse = `require(${JSON.stringify(dist)}).Llama.load({ modelPath: ${JSON.stringify(model)} })
    .then(() => console.log(JSON.stringify({ loaded: true })), (e) => console.log(JSON.stringify({ code: e.code, message: e.message })));`;
  const result = runScript(arm64("cortex-a53"), refuse, { env: { ...process.env, LLAMA_NAPI_BINARY: join(partial, "node.napi.glibc.node") } });
  report(
    result.code === "NO_BINARY" && /none of its CPU variants runs on this CPU/.test(result.message),
    `qemu -cpu cortex-a53 with only the armv8.6+ variants: ${result.error ?? `${result.code}: ${String(result.message).split("\n")[1]?.trim()}`}`,
  );
} finally {
  rmSync(partial, { recursive: true, force: true });
}

async function freePort() {
  const server = createServer();
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address();
  await new Promise((ok) => server.close(ok));
  return port;
}

async function listening(port, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // Resolves once the probe is closed: the rpc-server serves one connection at a time, and a probe
    // left open (the clients below run with this process's event loop blocked) would hold it.
    const up = await new Promise((ok) => {
      let connected = false;
      const socket = connect(port, "127.0.0.1", () => {
        connected = true;
        socket.destroy();
      });
      socket.on("close", () => ok(connected));
      socket.on("error", () => {});
    });
    if (up) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
    await new Promise((ok) => setTimeout(ok, 200));
  }
}

// RPC across architectures: an arm64 client offloading to an x86-64 rpc-server, and the reverse.
const local = runScript(hostNode, completion(null));
for (const [serverName, serverNode, serverEnv, clientName, clientNode, clientEnv] of [
  ["x86-64", hostNode, {}, "arm64", arm64(), onArm64],
  ["arm64", arm64(), onArm64, "x86-64", hostNode, {}],
]) {
  const port = await freePort();
  const server = spawn(serverNode.command, [...serverNode.args, cli, "rpc-server", "--port", String(port), "--threads", "1"], {
    env: serverEnv.env ?? process.env,
    stdio: "ignore",
  });
  try {
    await listening(port);
    const result = runScript(clientNode, completion(`127.0.0.1:${port}`), clientEnv);
    const same = !result.error && !local.error && result.text === local.text;
    report(same, `RPC: ${clientName} client, layers on an ${serverName} rpc-server: ${result.error ?? (same ? "same text" : JSON.stringify(result.text))} [${result.seconds} s]`);
  } catch (error) {
    report(false, `RPC: ${clientName} client, ${serverName} rpc-server: ${error.message}`);
  } finally {
    server.kill("SIGKILL");
  }
}

console.log(`${checks.failures === 0 ? "passed" : `${checks.failures} failed`} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exit(checks.failures === 0 ? 0 : 1);
