#!/usr/bin/env node
// Builds llama.cpp's llama-server from the vendored source in a build folder of its own
// (build/llama-server; the addon's build turns the server off), with the addon's compiler and
// ccache. The chat tests ask it how it renders a conversation, as their reference. Nothing to do
// once built; a cold build takes about 10 minutes on 2 cores.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { onPath, pickCompiler } from "./build.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const buildDir = join(root, "build", "llama-server");
const source = process.env.LLAMA_CPP_DIR ? resolve(process.env.LLAMA_CPP_DIR) : join(root, "vendor", "llama.cpp");

export function llamaServerPath() {
  return join(buildDir, "bin", "llama-server");
}

function cmake(args) {
  execFileSync("cmake", args, { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, CCACHE_BASEDIR: root } });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url) && !existsSync(llamaServerPath())) {
  console.log("[llama-server] building llama.cpp's llama-server, the chat tests' reference (once)");
  if (!existsSync(join(buildDir, "CMakeCache.txt"))) {
    const compiler = pickCompiler();
    cmake([
      "-S", source, "-B", buildDir, "-G", onPath("ninja") ? "Ninja" : "Unix Makefiles",
      "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
      "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_OPENSSL=OFF", "-DGGML_OPENMP=OFF",
      ...(compiler ? [`-DCMAKE_C_COMPILER=${compiler.cc}`, `-DCMAKE_CXX_COMPILER=${compiler.cxx}`] : []),
      ...(onPath("ccache") ? ["-DCMAKE_C_COMPILER_LAUNCHER=ccache", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"] : []),
    ]);
  }
  cmake(["--build", buildDir, "--target", "llama-server", "-j", "2"]);
}
