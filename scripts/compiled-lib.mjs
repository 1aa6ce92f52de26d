// A private compiled copy of the library for scripts and tests that run plain node children
// (fuzzing, soak runs, GC, exit and worker-thread checks): lib/ compiled by tsc and the addon
// copied beside it, in a temp folder named after their content. The shared dist/ and build/ may be
// rebuilt by someone else while a long run is going; the copy stays put.
//   node scripts/compiled-lib.mjs      prints the folder
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The addon node-gyp-build would load for this checkout (or LLAMA_NAPI_BINARY). */
function addonPath() {
  if (process.env.LLAMA_NAPI_BINARY) return resolve(process.env.LLAMA_NAPI_BINARY);
  return createRequire(join(root, "package.json"))("node-gyp-build").resolve(root);
}

/**
 * Compiles lib/ (CommonJS, as dist/cjs) into a cached temp folder and copies the addon there.
 * Returns { lib, binary, env }: require(join(lib, "index.js")) with `env` in the environment
 * (LLAMA_NAPI_BINARY pointing at the copy).
 */
export function compiledLibrary() {
  // Every source under lib/, subfolders included, so that a change anywhere makes a new copy.
  const sources = readdirSync(join(root, "lib"), { recursive: true })
    .filter((name) => name.endsWith(".ts"))
    .sort();
  const binarySource = addonPath();
  const hash = createHash("sha256");
  for (const name of sources) hash.update(name).update(readFileSync(join(root, "lib", name)));
  hash.update(readFileSync(join(root, "tsconfig.json"))).update(readFileSync(binarySource));
  const folder = join(tmpdir(), `llama-napi-lib-${hash.digest("hex").slice(0, 16)}`);
  const lib = join(folder, "cjs");
  const binary = join(folder, "llama_napi.node");
  if (!existsSync(join(lib, "index.js")) || !existsSync(binary) || !existsSync(join(folder, "node_modules"))) {
    const staging = `${folder}.${process.pid}.tmp`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    const tsc = createRequire(join(root, "package.json")).resolve("typescript/bin/tsc");
    const args = [tsc, "-p", join(root, "tsconfig.json"), "--outDir", join(staging, "cjs"), "--declaration", "false", "--sourceMap", "false"];
    // Type errors still emit JavaScript (as vitest runs lib/ without checking types); only a
    // compilation that emitted nothing is fatal.
    const result = spawnSync(process.execPath, args, { encoding: "utf8" });
    if (!existsSync(join(staging, "cjs", "index.js"))) throw new Error(`tsc failed:\n${result.stdout}${result.stderr}`);
    if (result.status !== 0) process.stderr.write(`[compiled-lib] tsc reported errors (output kept):\n${result.stdout}`);
    copyFileSync(binarySource, join(staging, "llama_napi.node"));
    // The library's own dependencies (prom-client for the server's metrics) resolve from here.
    symlinkSync(join(root, "node_modules"), join(staging, "node_modules"), "dir");
    // A copy made before the library had dependencies of its own lacks node_modules: replace it.
    if (existsSync(folder) && !existsSync(join(folder, "node_modules"))) rmSync(folder, { recursive: true, force: true });
    try {
      renameSync(staging, folder);
    } catch (err) {
      // Another process finished the same folder first: use theirs.
      rmSync(staging, { recursive: true, force: true });
      if (!existsSync(join(lib, "index.js"))) throw err;
    }
  }
  return { lib, binary, env: { LLAMA_NAPI_BINARY: binary } };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(compiledLibrary().lib);
}
