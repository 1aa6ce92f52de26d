#!/usr/bin/env node
// Packs the CUDA prebuild (prebuilds/linux-x64/cuda, from `npm run build:cuda`) as its own npm
// package, @llama-napi/linux-x64-cuda, which users add beside llama-napi when they have an NVIDIA
// GPU: at ~100 MiB packed it would multiply every CPU user's download, and it needs the CUDA runtime
// and driver that the user installs anyway. llama-napi finds it by name (lib/core/binding.ts).
//   node scripts/pack-cuda.mjs [DEST]      writes the tarball into DEST (default: the repository)
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Packs the package into `dest`; returns the tarball's path. */
export function packCuda(dest = root) {
  const platformDir = `${process.platform}-${process.arch}`;
  const source = join(root, "prebuilds", platformDir, "cuda");
  if (!existsSync(join(source, "libggml-cuda.so"))) throw new Error(`no CUDA prebuild in ${source}: run \`npm run build:cuda\` first`);
  const main = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const name = `@llama-napi/${platformDir}-cuda`;
  const folder = join(root, "build", "cuda-package");
  rmSync(folder, { recursive: true, force: true });
  mkdirSync(join(folder, "prebuilds", platformDir), { recursive: true });
  cpSync(source, join(folder, "prebuilds", platformDir, "cuda"), { recursive: true });
  writeFileSync(
    join(folder, "package.json"),
    `${JSON.stringify(
      {
        name,
        version: main.version,
        description: `llama-napi's CUDA prebuild for ${platformDir}: install beside llama-napi ${main.version} to offload to NVIDIA GPUs`,
        license: main.license,
        os: [process.platform],
        cpu: [process.arch],
        files: ["prebuilds/"],
        peerDependencies: { "llama-napi": main.version },
      },
      null,
      2,
    )}\n`,
  );
  writeFileSync(
    join(folder, "README.md"),
    `# ${name}\n\nThe CUDA build of [llama-napi](https://www.npmjs.com/package/llama-napi) ${main.version} for ${platformDir}. ` +
      "Install it beside llama-napi; llama-napi uses it when a GPU is found and falls back to its CPU prebuild otherwise. " +
      "It needs the NVIDIA driver and the CUDA 13 runtime and cuBLAS (libcudart.so.13, libcublas.so.13), which are not bundled.\n",
  );
  mkdirSync(dest, { recursive: true });
  const [packed] = JSON.parse(execFileSync("npm", ["pack", "--json", "--pack-destination", dest], { cwd: folder, encoding: "utf8" }));
  return join(dest, packed.filename);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(packCuda(resolve(process.argv[2] ?? root)));
}
