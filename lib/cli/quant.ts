/**
 * The quantization lab's commands: `llama-napi quantize`, `llama-napi bench` and `llama-napi synth`.
 * Each takes the arguments after its name and resolves to an exit code: 0 done, 1 failed, 2 bad
 * usage, 130 interrupted. Results go to stdout; progress goes to stderr, as bars on a terminal and
 * as plain lines otherwise.
 */
import { stat, writeFile } from "node:fs/promises";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { bench, type BenchProgress } from "../tools/bench.js";
import type { DraftOptions } from "../completion/options.js";
import { LlamaError } from "../errors.js";
import { parseQuantType, quantize, quantTypes } from "../tools/quantize.js";
import { formatBytes, formatFor, renderReport, toMarkdown } from "../tools/report.js";
import { MODEL_SHAPES, synthesizeModel, type ModelShapeName } from "../tools/synth.js";

export interface CommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

const defaultIo = (): CommandIo => ({ stdout: process.stdout, stderr: process.stderr });

class UsageError extends Error {}

/** Progress on stderr: one redrawn bar on a terminal, a line per step (and per 10 %) otherwise. */
class Progress {
  #label = "";
  #lastPlain = -1;
  #drawn = false;

  constructor(private readonly stream: CommandIo["stderr"]) {}

  get #tty(): boolean {
    return this.stream.isTTY === true;
  }

  update(label: string, fraction: number): void {
    const clamped = Math.max(0, Math.min(1, fraction));
    if (this.#tty) {
      const width = Math.max(10, Math.min(40, (this.stream.columns ?? 80) - label.length - 10));
      const filled = Math.round(clamped * width);
      this.stream.write(`\r\x1b[2K${label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${Math.floor(clamped * 100)}%`);
      this.#drawn = true;
      return;
    }
    const decile = Math.floor(clamped * 10);
    if (label !== this.#label || decile > this.#lastPlain) {
      this.stream.write(`${label}: ${Math.floor(clamped * 100)}%\n`);
      this.#lastPlain = decile;
    }
    this.#label = label;
  }

  /** Ends the bar being drawn, if any, so that other output starts on a fresh line. */
  finish(): void {
    if (this.#drawn) this.stream.write("\n");
    this.#drawn = false;
    this.#label = "";
    this.#lastPlain = -1;
  }

  line(text: string): void {
    this.finish();
    this.stream.write(`${text}\n`);
  }
}

/** Runs a command body with SIGINT turned into an abort, and errors into messages and exit codes. */
async function runCommand(
  io: CommandIo,
  usage: string,
  argv: string[],
  body: (signal: AbortSignal, progress: Progress) => Promise<void>,
): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    io.stdout.write(`${usage}\n`);
    return 0;
  }
  const controller = new AbortController();
  const onInterrupt = () => controller.abort(new Error("interrupted"));
  process.once("SIGINT", onInterrupt);
  const progress = new Progress(io.stderr);
  try {
    await body(controller.signal, progress);
    progress.finish();
    return 0;
  } catch (err) {
    progress.finish();
    if (err instanceof UsageError || err instanceof RangeError || err instanceof TypeError) {
      io.stderr.write(`error: ${err.message}\n\n${usage}\n`);
      return 2;
    }
    if (err instanceof LlamaError && err.code === "ABORTED") {
      io.stderr.write("interrupted\n");
      return 130;
    }
    io.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    process.removeListener("SIGINT", onInterrupt);
  }
}

function parse(argv: string[], options: ParseArgsConfig["options"]): ReturnType<typeof parseArgs> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function positiveInteger(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a whole number, got ${String(value)}`);
  return n;
}

const QUANTIZE_USAGE = `usage: llama-napi quantize IN.gguf OUT.gguf TYPE [options]
  --threads N               threads (default: all cores)
  --imatrix FILE            importance matrix from llama-imatrix (GGUF or .dat)
  --allow-requantize        quantize tensors that are already quantized
  --leave-output-tensor     keep output.weight as it is
  --output-tensor-type T    ggml type of output.weight
  --token-embedding-type T  ggml type of token_embd.weight
  --pure                    every tensor in TYPE (no mixes)
  --list                    list the types`;

function typeList(): string {
  return quantTypes()
    .map((t) => `  ${t.name.padEnd(10)} ${t.description}${t.needsImatrix ? " (needs an importance matrix)" : ""}`)
    .join("\n");
}

/** `llama-napi quantize IN OUT TYPE`: llama.cpp's quantizer with a progress bar. */
export function quantizeCommand(argv: string[], io: CommandIo = defaultIo()): Promise<number> {
  return runCommand(io, QUANTIZE_USAGE, argv, async (signal, progress) => {
    const { values, positionals } = parse(argv, {
      threads: { type: "string" },
      imatrix: { type: "string" },
      "allow-requantize": { type: "boolean" },
      "leave-output-tensor": { type: "boolean" },
      "output-tensor-type": { type: "string" },
      "token-embedding-type": { type: "string" },
      pure: { type: "boolean" },
      list: { type: "boolean" },
    });
    if (values.list) {
      io.stdout.write(`${typeList()}\n`);
      return;
    }
    if (positionals.length !== 3) throw new UsageError("expected IN, OUT and TYPE");
    const [input, output, typeName] = positionals as [string, string, string];
    const type = parseQuantType(typeName, "TYPE");
    const started = Date.now();
    await quantize(input, output, {
      type,
      nThreads: positiveInteger("threads", values.threads),
      imatrix: values.imatrix as string | undefined,
      allowRequantize: values["allow-requantize"] as boolean | undefined,
      leaveOutputTensor: values["leave-output-tensor"] as boolean | undefined,
      outputTensorType: values["output-tensor-type"] as string | undefined,
      tokenEmbeddingType: values["token-embedding-type"] as string | undefined,
      pure: values.pure as boolean | undefined,
      signal,
      onProgress: (fraction) => progress.update(`quantize ${type}`, fraction),
    });
    progress.finish();
    io.stdout.write(`${output}: ${type}, ${formatBytes((await stat(output)).size)} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  });
}

const BENCH_USAGE = `usage: llama-napi bench [MODEL.gguf ...] [--base BASE.gguf --types T1,T2,...] [options]
  --base FILE        the reference model; --types are quantized from it when missing
  --types LIST       quantization types, comma-separated (e.g. Q8_0,Q5_K_M,Q4_K_M,Q4_0)
  --quant-dir DIR    where quantized files go (default: beside the base)
  --imatrix FILE     importance matrix for the types that need one
  --text FILE        text for perplexity (and KL divergence from the base)
  --ctx N            perplexity chunk size (default 512)
  --chunks N         perplexity chunks at most (default: all)
  -p N, -n N, -r N   prompt tokens, generated tokens, runs per test (default 512, 128, 5)
  -t N               threads
  -b N, --ub N       batch and micro-batch sizes (default 2048, 512)
  --draft FILE|ngram also time -n greedy tokens with speculative decoding (a draft model, or n-gram lookup) against without
  --draft-max N      most tokens drafted per decode (default 16)
  --out FILE         write the report: .html, .md, .csv, .json or .svg (repeatable)`;

function describeProgress(event: BenchProgress): { label: string; fraction: number } {
  const name = event.model.split("/").pop()!;
  switch (event.phase) {
    case "quantize":
      return { label: `quantize ${event.type}`, fraction: event.fraction };
    case "speed": {
      const { step, done, total } = event.progress;
      return { label: `${name} ${step}`, fraction: total > 0 ? done / total : 0 };
    }
    case "quality":
      return { label: `${name} perplexity`, fraction: event.chunksDone / event.chunksTotal };
    case "speculative":
      return { label: `${name} speculative`, fraction: 0 };
  }
}

function draftOf(draft: string | undefined, nDraft: number | undefined): DraftOptions | undefined {
  if (draft === undefined) {
    if (nDraft !== undefined) throw new UsageError("--draft-max needs --draft");
    return undefined;
  }
  return draft === "ngram" ? { type: "ngram", nDraft } : { modelPath: draft, nDraft };
}

/** `llama-napi bench`: quantize what is missing, measure everything, print the table, write reports. */
export function benchCommand(argv: string[], io: CommandIo = defaultIo()): Promise<number> {
  return runCommand(io, BENCH_USAGE, argv, async (signal, progress) => {
    const { values, positionals } = parse(argv, {
      base: { type: "string" },
      types: { type: "string" },
      "quant-dir": { type: "string" },
      imatrix: { type: "string" },
      text: { type: "string" },
      ctx: { type: "string" },
      chunks: { type: "string" },
      "n-prompt": { type: "string", short: "p" },
      "n-gen": { type: "string", short: "n" },
      repetitions: { type: "string", short: "r" },
      threads: { type: "string", short: "t" },
      "batch-size": { type: "string", short: "b" },
      ub: { type: "string" },
      draft: { type: "string" },
      "draft-max": { type: "string" },
      out: { type: "string", multiple: true },
    });
    const outputs = (values.out as string[] | undefined) ?? [];
    outputs.forEach((path) => formatFor(path));
    const report = await bench({
      models: positionals,
      base: values.base as string | undefined,
      types: values.types === undefined ? undefined : (values.types as string).split(",").map((t) => t.trim()).filter(Boolean),
      quantDir: values["quant-dir"] as string | undefined,
      imatrix: values.imatrix as string | undefined,
      text: values.text as string | undefined,
      nCtx: positiveInteger("ctx", values.ctx),
      nChunks: positiveInteger("chunks", values.chunks),
      nPrompt: positiveInteger("n-prompt", values["n-prompt"]),
      nGen: positiveInteger("n-gen", values["n-gen"]),
      repetitions: positiveInteger("repetitions", values.repetitions),
      nThreads: positiveInteger("threads", values.threads),
      nBatch: positiveInteger("batch-size", values["batch-size"]),
      nUbatch: positiveInteger("ub", values.ub),
      draft: draftOf(values.draft as string | undefined, positiveInteger("draft-max", values["draft-max"])),
      signal,
      onProgress: (event) => {
        const { label, fraction } = describeProgress(event);
        progress.update(label, fraction);
      },
    });
    progress.finish();
    io.stdout.write(toMarkdown(report));
    for (const path of outputs) {
      await writeFile(path, renderReport(report, path));
      progress.line(`wrote ${path}`);
    }
  });
}

const SYNTH_USAGE = `usage: llama-napi synth --shape SHAPE --vocab VOCAB.gguf OUT.gguf [--type f16|f32] [--seed N]
  shapes: ${Object.keys(MODEL_SHAPES).join(", ")}
  VOCAB.gguf: a vocabulary file such as llama.cpp's models/ggml-vocab-llama-bpe.gguf (Llama 3)`;

/** `llama-napi synth`: a random-weight model of a real shape, for speed and memory measurements. */
export function synthCommand(argv: string[], io: CommandIo = defaultIo()): Promise<number> {
  return runCommand(io, SYNTH_USAGE, argv, async () => {
    const { values, positionals } = parse(argv, {
      shape: { type: "string" },
      vocab: { type: "string" },
      type: { type: "string" },
      seed: { type: "string" },
    });
    if (positionals.length !== 1) throw new UsageError("expected one output file");
    const shape = values.shape as string | undefined;
    if (shape === undefined || !Object.hasOwn(MODEL_SHAPES, shape)) {
      throw new UsageError(`--shape must be one of ${Object.keys(MODEL_SHAPES).join(", ")}`);
    }
    const vocab = values.vocab as string | undefined;
    if (vocab === undefined) throw new UsageError("--vocab is required");
    const type = (values.type as string | undefined) ?? "f16";
    if (type !== "f16" && type !== "f32") throw new UsageError(`--type must be f16 or f32, got ${type}`);
    const result = await synthesizeModel({
      shape: shape as ModelShapeName,
      vocabPath: vocab,
      outPath: positionals[0]!,
      type,
      seed: positiveInteger("seed", values.seed),
    });
    io.stdout.write(
      `${result.path}: ${MODEL_SHAPES[shape as ModelShapeName].name}, ${(result.nParams / 1e9).toFixed(2)} B parameters, ` +
        `${result.nVocab} tokens, ${formatBytes(result.fileSize)}\n`,
    );
  });
}
