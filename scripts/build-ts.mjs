#!/usr/bin/env node
// Compiles lib/ to CommonJS in dist/cjs and adds an ES module entry that re-exports it, so that
// `import` and `require` share one instance of the addon and its classes.
import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = createRequire(join(root, "package.json")).resolve("typescript/bin/tsc");
rmSync(join(root, "dist"), { recursive: true, force: true });
const result = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.json")], { stdio: "inherit" });
if (result.status !== 0) process.exit(result.status ?? 1);
mkdirSync(join(root, "dist", "esm"), { recursive: true });
writeFileSync(join(root, "dist", "esm", "index.mjs"), 'export * from "../cjs/index.js";\n');
writeFileSync(join(root, "dist", "esm", "index.d.mts"), 'export * from "../cjs/index.js";\n');
