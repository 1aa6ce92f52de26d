#!/usr/bin/env node
// `npm test` runs this first: it builds llama-server for the chat tests (scripts/build-llama-server.mjs)
// and the prebuilds the pack test installs. Each is built once (it takes a while: every CPU
// variant); delete prebuilds/ or run `npm run build:prebuild` (`-- --arch arm64`) to rebuild them
// after changing native code.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
// The chat tests' reference: llama.cpp's llama-server, built once in a folder of its own.
const server = spawnSync(process.execPath, [join(root, "scripts", "build-llama-server.mjs")], { cwd: root, stdio: "inherit" });
if (server.status !== 0) process.exit(server.status ?? 1);
// The pack test installs the tarball as users get it: it needs the portable prebuild of this
// machine and, on linux-x64, the cross-compiled linux-arm64 one (run there under qemu).
const wanted = process.platform !== "linux" ? [] : process.arch === "x64" ? ["x64", "arm64"] : [process.arch];
for (const arch of wanted) {
  const folder = join(root, "prebuilds", `linux-${arch}`);
  if (existsSync(folder) && readdirSync(folder).some((f) => f.endsWith(".node"))) continue;
  console.log(`[pretest] building the linux-${arch} prebuild for the pack test (once)`);
  const archFlag = arch === process.arch ? [] : ["--arch", arch];
  const result = spawnSync(process.execPath, [join(root, "scripts", "prebuild.mjs"), ...archFlag], { cwd: root, stdio: "inherit" });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
