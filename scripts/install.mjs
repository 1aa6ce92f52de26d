#!/usr/bin/env node
// `npm install` entry: keep a prebuilt (or already built) addon when it loads on this machine,
// otherwise build from source. LLAMA_NAPI_FROM_SOURCE=1 forces the source build.
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function prebuiltLoads() {
  let nodeGypBuild;
  try {
    nodeGypBuild = createRequire(join(root, "package.json")).resolve("node-gyp-build");
  } catch {
    return false;
  }
  // A child process: a binary that faults on this CPU must not take the install down with it.
  const probe = spawnSync(process.execPath, ["-e", `require(${JSON.stringify(nodeGypBuild)})(${JSON.stringify(root)})`], {
    stdio: "ignore",
    timeout: 60_000,
  });
  return probe.status === 0;
}

if (!process.env.LLAMA_NAPI_FROM_SOURCE && prebuiltLoads()) {
  console.log("[llama-napi] using the existing addon (run `npm run build` to rebuild from source)");
  process.exit(0);
}
const build = spawnSync(process.execPath, [join(root, "scripts", "build.mjs")], { cwd: root, stdio: "inherit" });
process.exit(build.status ?? 1);
