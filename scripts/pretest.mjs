#!/usr/bin/env node
// `npm test` runs this first: it builds llama-server for the chat tests (scripts/build-llama-server.mjs),
// and the pack test installs the package as users get it, which needs the
// portable prebuild. It is built once (it takes a while: every x86-64 CPU variant); delete
// prebuilds/ or run `npm run build:prebuild` to rebuild it after changing native code.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
// The chat tests' reference: llama.cpp's llama-server, built once in a folder of its own.
const server = spawnSync(process.execPath, [join(root, "scripts", "build-llama-server.mjs")], { cwd: root, stdio: "inherit" });
if (server.status !== 0) process.exit(server.status ?? 1);
const folder = join(root, "prebuilds", `${process.platform}-${process.arch}`);
const present = existsSync(folder) && readdirSync(folder).some((f) => f.endsWith(".node"));
if (present || process.platform !== "linux") process.exit(0);
console.log("[pretest] building the portable prebuild for the pack test (once)");
const result = spawnSync(process.execPath, [join(root, "scripts", "prebuild.mjs")], { cwd: root, stdio: "inherit" });
process.exit(result.status ?? 1);
