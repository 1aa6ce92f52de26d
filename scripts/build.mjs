#!/usr/bin/env node
// Builds the addon from source with cmake-js: fetches the pinned llama.cpp when needed, picks the
// compiler (clang first: GCC 12 miscompiles ggml's AMX kernels), and passes build options through.
//   node scripts/build.mjs [--portable | --cuda] [--metal] [--debug] [--target NAME] [--CDNAME=VALUE ...]
// Each variant has its own CMake folder, kept between runs so that only what changed is rebuilt:
//   (default)   build/cmake     static, tuned for this machine  -> build/Release/llama_napi.node
//   --metal     build/metal     the same with Metal (macOS)     -> build/Release/llama_napi.node
//   --portable  build/portable  shared libs + every CPU variant -> build/portable/bin (a prebuild's contents)
//   --cuda      build/cuda      portable + the CUDA module      -> build/cuda/bin
import { execFileSync, spawnSync } from "node:child_process";
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

/** The variant the flags ask for: its CMake folder and whether it is portable. */
export function variantOf(flags) {
  if (flags.includes("--cuda")) return { name: "cuda", folder: "build/cuda", portable: true, cuda: true };
  if (flags.includes("--portable")) return { name: "portable", folder: "build/portable", portable: true, cuda: false };
  if (flags.includes("--metal")) return { name: "metal", folder: "build/metal", portable: false, cuda: false };
  return { name: "default", folder: "build/cmake", portable: false, cuda: false };
}

function main() {
  fetchLlamaCpp();
  const variant = variantOf(args);
  const cmakeJs = join(root, "node_modules", "cmake-js", "bin", "cmake-js");
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
  // sm_80 code also runs on sm_86/sm_89 (Ampere, Ada); sm_90 is Hopper; its PTX JIT-compiles for newer GPUs.
  if (variant.cuda && !process.env.CUDAARCHS) cmd.push("--CDCMAKE_CUDA_ARCHITECTURES=80;90");
  // Any other CMake cache setting passes through as cmake-js takes it: --CDNAME=VALUE.
  cmd.push(...args.filter((arg) => arg.startsWith("--CD")));
  console.log(`[build] cmake-js ${cmd.slice(1).join(" ")}`);
  // Paths under the checkout reach ccache relative to it, so that another clone (CI's) hits the cache.
  const env = { ...process.env, CCACHE_BASEDIR: process.env.CCACHE_BASEDIR ?? root };
  const result = spawnSync(process.execPath, cmd, { cwd: root, stdio: "inherit", env });
  process.exit(result.status ?? 1);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
