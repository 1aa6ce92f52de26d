#!/usr/bin/env node
// `npm install` entry: keep a prebuilt (or already built) addon when it loads on this machine,
// otherwise build from source. LLAMA_NAPI_FROM_SOURCE=1 forces the source build.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function prebuiltLoads() {
  // The package's own loader when it is compiled (an installed package): it passes over a binary
  // built for another architecture or without a CPU variant for this CPU, as the app will.
  const dist = join(root, "dist", "cjs", "index.js");
  let load;
  if (existsSync(dist)) {
    load = `require(${JSON.stringify(dist)}).buildInfo()`;
  } else {
    try {
      load = `require(${JSON.stringify(createRequire(join(root, "package.json")).resolve("node-gyp-build"))})(${JSON.stringify(root)})`;
    } catch {
      return false;
    }
  }
  // A child process: a binary that faults on this CPU must not take the install down with it.
  const probe = spawnSync(process.execPath, ["-e", load], { stdio: "ignore", timeout: 60_000 });
  return probe.status === 0;
}

if (!process.env.LLAMA_NAPI_FROM_SOURCE && prebuiltLoads()) {
  console.log("[llama-napi] using the existing addon (run `npm run build` to rebuild from source)");
  process.exit(0);
}
const build = spawnSync(process.execPath, [join(root, "scripts", "build.mjs")], { cwd: root, stdio: "inherit" });
process.exit(build.status ?? 1);
