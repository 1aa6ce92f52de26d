#!/usr/bin/env node
// Writes test/goldens/simple.json: greedy continuations printed by llama.cpp's own `llama-simple`
// example, built from the vendored source in the addon's CMake tree (same compiler and flags).
// The generation test checks that llama-napi's low-level classes produce exactly the same text.
//   node scripts/make-goldens.mjs
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const models = process.env.LLAMA_NAPI_MODELS ? resolve(process.env.LLAMA_NAPI_MODELS) : resolve(root, "..", "shared", "models");
const buildDir = join(root, "build", "cmake");
if (!existsSync(join(buildDir, "CMakeCache.txt"))) {
  console.error("build/cmake is not configured: run `npm run build` first");
  process.exit(1);
}
execFileSync("cmake", ["--build", buildDir, "--target", "llama-simple"], { stdio: "inherit" });
const simple = join(buildDir, "bin", "llama-simple");

const cases = [
  { model: "stories260K.gguf", prompt: "Once upon a time", nPredict: 64 },
  { model: "stories260K.gguf", prompt: "Lily and Tom went to the park", nPredict: 48 },
  { model: "stories260K.gguf", prompt: "The little dog was sad because", nPredict: 40 },
  { model: "stories260K.gguf", prompt: "One day", nPredict: 100 },
  { model: "llama-2-tiny-random.gguf", prompt: "Hello world", nPredict: 24 },
  { model: "llama-2-tiny-random.gguf", prompt: "日本語のテキスト 🦙", nPredict: 24 },
];

const goldens = cases.map((c) => {
  const stdout = execFileSync(simple, ["-m", join(models, c.model), "-n", String(c.nPredict), c.prompt], {
    encoding: "buffer",
    stdio: ["ignore", "pipe", "ignore"],
  });
  // Bytes as hex: the random model's output need not be valid UTF-8.
  return { ...c, stdoutHex: stdout.toString("hex"), stdoutText: stdout.toString("utf8") };
});

mkdirSync(join(root, "test", "goldens"), { recursive: true });
writeFileSync(join(root, "test", "goldens", "simple.json"), JSON.stringify({ tool: "llama-simple", goldens }, null, 2) + "\n");
for (const g of goldens) console.log(`${g.model} ${JSON.stringify(g.prompt)} -> ${JSON.stringify(g.stdoutText.slice(0, 100))}`);
