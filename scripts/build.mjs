#!/usr/bin/env node
// Builds the addon from source with cmake-js: fetches the pinned llama.cpp when needed, picks the
// compiler (clang first: GCC 12 miscompiles ggml's AMX kernels), and passes build options through.
//   node scripts/build.mjs [--portable | --cuda] [--arch arm64] [--metal] [--debug] [--target NAME] [--CDNAME=VALUE ...]
// Each variant has its own CMake folder, kept between runs so that only what changed is rebuilt:
//   (default)   build/cmake     static, tuned for this machine  -> build/Release/llama_napi.node
//   --metal     build/metal     the same with Metal (macOS)     -> build/Release/llama_napi.node
//   --portable  build/portable  shared libs + every CPU variant -> build/portable/bin (a prebuild's contents)
//   --cuda      build/cuda      portable + the CUDA module      -> build/cuda/bin
//   --arch arm64  build/portable-arm64  portable, cross-compiled for linux-arm64 -> build/portable-arm64/bin
import { execFileSync, spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { fetchLlamaCpp } from "../vendor/fetch.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const has = (flag) => args.includes(flag);
const valueOf = (flag) => {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
};

// Turing (sm_75) as PTX, compiled just in time; sm_80 machine code, which also runs on sm_86 and
// sm_89 (Ampere, Ada), with its PTX; Hopper (sm_90) machine code and PTX, JIT-compiled on newer GPUs.
export const CUDA_ARCHITECTURES = "75-virtual;80;90";

export function onPath(cmd) {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export function pickCompiler() {
  if (process.env.CC && process.env.CXX) return { cc: process.env.CC, cxx: process.env.CXX };
  if (process.platform === "win32" || process.platform === "darwin") return null;
  for (const v of ["", "-21", "-20", "-19", "-18", "-17"]) {
    if (onPath(`clang${v}`) && onPath(`clang++${v}`)) return { cc: `clang${v}`, cxx: `clang++${v}` };
  }
  return null;
}

/** The architectures a portable build can be cross-compiled for from x86-64 Linux: Node's name -> CMake toolchain file. */
export const CROSS_TOOLCHAINS = { arm64: "scripts/aarch64-linux-gnu.cmake" };

/** The variant the flags ask for: its CMake folder and whether it is portable. */
export function variantOf(flags) {
  const arch = flags.includes("--arch") ? flags[flags.indexOf("--arch") + 1] : process.arch;
  if (arch !== process.arch) {
    if (!CROSS_TOOLCHAINS[arch] || process.platform !== "linux" || process.arch !== "x64" || flags.includes("--cuda")) {
      throw new Error(`cannot build for ${arch} here: cross builds are portable CPU builds for ${Object.keys(CROSS_TOOLCHAINS).join(", ")} from linux-x64`);
    }
    return { name: `portable-${arch}`, folder: `build/portable-${arch}`, portable: true, cuda: false, toolchain: CROSS_TOOLCHAINS[arch] };
  }
  if (flags.includes("--cuda")) return { name: "cuda", folder: "build/cuda", portable: true, cuda: true };
  if (flags.includes("--portable")) return { name: "portable", folder: "build/portable", portable: true, cuda: false };
  if (flags.includes("--metal")) return { name: "metal", folder: "build/metal", portable: false, cuda: false };
  return { name: "default", folder: "build/cmake", portable: false, cuda: false };
}

function main() {
  fetchLlamaCpp();
  const variant = variantOf(args);
  // Resolved as Node does: in an installed package cmake-js sits beside llama-napi, not inside it.
  const cmakeJs = join(dirname(createRequire(join(root, "package.json")).resolve("cmake-js/package.json")), "bin", "cmake-js");
  const command = valueOf("--target") ? ["build", "--target", valueOf("--target")] : ["build"];
  const cmd = [cmakeJs, ...command, "--out", variant.folder, "--config", has("--debug") ? "Debug" : "Release"];
  const compiler = pickCompiler();
  if (compiler) cmd.push("--cc", compiler.cc, "--cxx", compiler.cxx);
  else console.warn("[build] no clang found: building with the default compiler");
  if (onPath("ccache")) {
    cmd.push("--CDCMAKE_C_COMPILER_LAUNCHER=ccache", "--CDCMAKE_CXX_COMPILER_LAUNCHER=ccache");
    if (variant.cuda) cmd.push("--CDCMAKE_CUDA_COMPILER_LAUNCHER=ccache");
  }
  cmd.push(`--CDLLAMA_NAPI_CUDA=${variant.cuda ? "ON" : "OFF"}`);
  cmd.push(`--CDLLAMA_NAPI_METAL=${has("--metal") ? "ON" : "OFF"}`);
  cmd.push(`--CDLLAMA_NAPI_PORTABLE=${variant.portable ? "ON" : "OFF"}`);
  if (variant.toolchain) {
    if (!compiler) throw new Error("cross builds need clang (apt-get install clang-19)");
    cmd.push(`--CDCMAKE_TOOLCHAIN_FILE=${join(root, variant.toolchain)}`);
  }
  if (variant.cuda && !process.env.CUDAARCHS) cmd.push(`--CDCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES}`);
  // Any other CMake cache setting passes through as cmake-js takes it: --CDNAME=VALUE.
  cmd.push(...args.filter((arg) => arg.startsWith("--CD")));
  console.log(`[build] cmake-js ${cmd.slice(1).join(" ")}`);
  // Paths under the checkout reach ccache relative to it, so that another clone (CI's) hits the cache.
  const env = { ...process.env, CCACHE_BASEDIR: process.env.CCACHE_BASEDIR ?? root };
  const result = spawnSync(process.execPath, cmd, { cwd: root, stdio: "inherit", env });
  process.exit(result.status ?? 1);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
