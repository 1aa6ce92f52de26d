#!/usr/bin/env node
// Builds the addon from source with cmake-js: fetches the pinned llama.cpp when needed, picks the
// compiler (clang first: GCC 12 miscompiles ggml's AMX kernels), and passes build options through.
//   node scripts/build.mjs [--cuda] [--metal] [--portable] [--debug] [--target NAME]
// CMake's build folder (build/cmake) is kept between runs, so only what changed is rebuilt.
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

function onPath(cmd) {
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

function main() {
  fetchLlamaCpp();
  const cmakeJs = join(root, "node_modules", "cmake-js", "bin", "cmake-js");
  const command = valueOf("--target") ? ["build", "--target", valueOf("--target")] : ["build"];
  const cmd = [cmakeJs, ...command, "--out", "build/cmake", "--config", has("--debug") ? "Debug" : "Release"];
  const compiler = pickCompiler();
  if (compiler) cmd.push("--cc", compiler.cc, "--cxx", compiler.cxx);
  else console.warn("[build] no clang found: building with the default compiler");
  if (onPath("ccache")) cmd.push("--CDCMAKE_C_COMPILER_LAUNCHER=ccache", "--CDCMAKE_CXX_COMPILER_LAUNCHER=ccache");
  cmd.push(`--CDLLAMA_NAPI_CUDA=${has("--cuda") ? "ON" : "OFF"}`);
  cmd.push(`--CDLLAMA_NAPI_METAL=${has("--metal") ? "ON" : "OFF"}`);
  cmd.push(`--CDLLAMA_NAPI_PORTABLE=${has("--portable") ? "ON" : "OFF"}`);
  if (has("--cuda") && !process.env.CUDAARCHS) cmd.push("--CDCMAKE_CUDA_ARCHITECTURES=80;86;89;90");
  console.log(`[build] cmake-js ${cmd.slice(1).join(" ")}`);
  const result = spawnSync(process.execPath, cmd, { cwd: root, stdio: "inherit" });
  process.exit(result.status ?? 1);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
