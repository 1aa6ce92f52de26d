#!/usr/bin/env node
// Writes test/goldens/perplexity.json: what llama.cpp's own tools, built from the vendored source in
// the addon's CMake tree, report for stories260K on test/data/stories.txt in chunks of 128 tokens:
// llama-perplexity's perplexity of the F32 model, and its --kl-divergence figures for the Q8_0 and
// Q4_0 quantizations made by llama-quantize. test/quant.test.ts checks llama-napi against them.
//   node scripts/make-perplexity-golden.mjs
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const models = process.env.LLAMA_NAPI_MODELS ? resolve(process.env.LLAMA_NAPI_MODELS) : resolve(root, "..", "shared", "models");
const buildDir = join(root, "build", "cmake");
if (!existsSync(join(buildDir, "CMakeCache.txt"))) {
  console.error("build/cmake is not configured: run `npm run build` first");
  process.exit(1);
}
execFileSync("cmake", ["--build", buildDir, "--target", "llama-perplexity", "llama-quantize"], { stdio: "inherit" });
const bin = (name) => join(buildDir, "bin", name);

const model = join(models, "stories260K.gguf");
const textFile = join(root, "test", "data", "stories.txt");
const nCtx = 128;
const threads = "2";

function quantizeWithLlamaCpp(input, output, type) {
  execFileSync(bin("llama-quantize"), [input, output, type, threads], { stdio: "ignore" });
}

/** llama-perplexity's whole output: it logs on stderr and prints the chunk values on stdout. */
function perplexityOutput(args) {
  return execFileSync("sh", ["-c", '"$0" "$@" 2>&1', bin("llama-perplexity"), ...args], { encoding: "utf8", maxBuffer: 64 << 20 });
}

function number(output, pattern, what) {
  const match = pattern.exec(output);
  if (!match) throw new Error(`llama-perplexity printed no ${what}:\n${output.slice(-3000)}`);
  return Number(match[1]);
}

const work = mkdtempSync(join(tmpdir(), "llama-napi-ppl-"));
try {
  const base = perplexityOutput(["-m", model, "-f", textFile, "-c", String(nCtx), "-t", threads]);
  const perplexity = number(base, /Final estimate: PPL = ([\d.]+)/, "final estimate");
  const uncertainty = number(base, /Final estimate: PPL = [\d.]+ \+\/- ([\d.]+)/, "uncertainty");
  const chunks = number(base, /calculating perplexity over (\d+) chunks/, "chunk count");

  const logits = join(work, "base.kld");
  perplexityOutput(["-m", model, "-f", textFile, "-c", String(nCtx), "-t", threads, "--kl-divergence-base", logits]);
  const divergence = {};
  for (const type of ["Q8_0", "Q4_0"]) {
    const quantized = join(work, `stories260K-${type}.gguf`);
    quantizeWithLlamaCpp(model, quantized, type);
    const out = perplexityOutput(["-m", quantized, "-c", String(nCtx), "-t", threads, "--kl-divergence-base", logits, "--kl-divergence"]);
    divergence[type] = {
      perplexity: number(out, /Mean PPL\(Q\)\s*:\s*([\d.]+)/, "Mean PPL(Q)"),
      basePerplexity: number(out, /Mean PPL\(base\)\s*:\s*([\d.]+)/, "Mean PPL(base)"),
      meanKld: number(out, /Mean\s+KLD:\s*([\d.]+)/, "mean KLD"),
      medianKld: number(out, /Median\s+KLD:\s*([\d.]+)/, "median KLD"),
      p99Kld: number(out, /99\.0%\s+KLD:\s*([\d.]+)/, "99% KLD"),
      // Printed in percent.
      rmsDeltaP: Number((number(out, /RMS Δp\s*:\s*([\d.]+)/, "RMS Δp") / 100).toPrecision(6)),
      sameTop: Number((number(out, /Same top p:\s*([\d.]+)/, "same top p") / 100).toPrecision(6)),
    };
  }

  const { commit } = JSON.parse(readFileSync(join(root, "vendor", "llama.cpp.pin.json"), "utf8"));
  mkdirSync(join(root, "test", "goldens"), { recursive: true });
  writeFileSync(
    join(root, "test", "goldens", "perplexity.json"),
    JSON.stringify(
      {
        tool: "llama-perplexity",
        llamaCommit: commit,
        model: "stories260K.gguf",
        text: "test/data/stories.txt",
        nCtx,
        chunks,
        perplexity,
        uncertainty,
        divergence,
      },
      null,
      2,
    ) + "\n",
  );
  console.log(`perplexity ${perplexity} ± ${uncertainty} over ${chunks} chunks`, divergence);
} finally {
  rmSync(work, { recursive: true, force: true });
}
