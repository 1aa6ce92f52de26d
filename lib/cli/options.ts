// Option groups shared by the commands that load a model or sample text, and their translation to
// the Llama API. Nothing here loads the addon: the sampling parameters' table is plain data.
import { readFileSync } from "node:fs";
import type { LlamaLoadOptions, SamplingOptions } from "../completion/llama.js";
import { scalarSamplingParameters, type SamplingParameterName } from "../core/sampling.js";
import { Flags, UsageError, type OptionSpecs } from "./args.js";

export const modelOption: OptionSpecs = {
  model: { type: "string", short: "m", value: "FILE", help: "GGUF model file, or a Hub model: hf:owner/repo:QUANT (required; see pull)" },
};

export const loadOptions: OptionSpecs = {
  ...modelOption,
  "ctx-size": { type: "string", short: "c", value: "N", help: "context size per sequence in tokens; 0: the model's (default 512)" },
  threads: { type: "string", short: "t", value: "N", help: "generation threads (default: all cores up to 4, half above)" },
  "threads-batch": { type: "string", value: "N", help: "prompt-processing threads (default: --threads)" },
  "batch-size": { type: "string", short: "b", value: "N", help: "logical batch size (default 512)" },
  "ubatch-size": { type: "string", value: "N", help: "physical batch size (default 512)" },
  "gpu-layers": { type: "string", value: "N", help: "layers to offload to the GPU, -1: all (default 0)" },
  "flash-attn": { type: "string", value: "on|off|auto", help: "flash attention (default auto)" },
  "context-shift": { type: "boolean", help: "when a generation fills the context, discard the older half of it (after --keep) and go on" },
  keep: { type: "string", value: "N", help: "with --context-shift: prompt tokens to keep after the BOS; -1: all (default 0)" },
  "no-mmap": { type: "boolean", help: "read the model instead of mapping it" },
  mlock: { type: "boolean", help: "lock the model in RAM" },
  "chat-template": { type: "string", value: "JINJA|NAME", help: "chat template: a Jinja template, or a built-in name (chatml, llama3, ...) for llama.cpp's older formatter" },
  "chat-template-file": { type: "string", value: "FILE", help: "read the Jinja chat template from FILE" },
  "no-jinja": { type: "boolean", help: "format chats with llama.cpp's older, name-based formatter (no tools)" },
  mmproj: { type: "string", value: "FILE", help: "multimodal projector (mmproj GGUF, or an hf: name) for images and audio" },
  draft: { type: "string", value: "FILE|ngram", help: "speculative decoding: a draft model sharing the vocabulary (a file or hf: name), or ngram for lookup in the text so far" },
  "draft-max": { type: "string", value: "N", help: "most tokens drafted per decode (default 16)" },
  "draft-p-min": { type: "string", value: "P", help: "a draft model's least probability of a drafted token (default 0.75)" },
  "draft-ngram-size": { type: "string", value: "N", help: "tokens that must repeat before --draft ngram drafts what followed them (default 3)" },
  lora: { type: "string", multiple: true, value: "FILE[:SCALE]", help: "apply a LoRA adapter, at SCALE (default 1)" },
  verbose: { type: "boolean", help: "print llama.cpp's log to stderr" },
};

/** llama.cpp's flag names, where they are not the parameter's name in kebab case. */
const LLAMA_CPP_FLAGS: Partial<Record<SamplingParameterName, string>> = { temperature: "temp", typicalP: "typical" };
const SHORT_FLAGS: Partial<Record<SamplingParameterName, string>> = { seed: "s" };
const HELP_DEFAULTS: Partial<Record<SamplingParameterName, string>> = { temperature: "complete: 0.8, chat: 0.2" };

/** The sampling parameters a flag gives as a plain number or string (lib/core/sampling.ts), with their flags. */
const scalarFlags = scalarSamplingParameters().map((parameter) => ({
  ...parameter,
  flag: LLAMA_CPP_FLAGS[parameter.name] ?? parameter.name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`),
}));

export const samplingOptions: OptionSpecs = {
  "max-tokens": { type: "string", short: "n", value: "N", help: "tokens to generate; 0: until the end of generation (complete: 16, chat: 0)" },
  ...Object.fromEntries(
    scalarFlags.map(({ name, flag, scalar, help, default: fallback }) => {
      const shown = HELP_DEFAULTS[name] ?? (fallback === undefined ? undefined : `default ${String(fallback)}`);
      const value = scalar === "string" ? "TEXT" : scalar === "integer" ? "N" : "X";
      return [flag, { type: "string", short: SHORT_FLAGS[name], value, help: shown && !help.includes("default") ? `${help} (${shown})` : help }];
    }),
  ),
  mirostat: { type: "string", value: "0|1|2", help: "Mirostat sampling version; 0: off (default 0)" },
  "mirostat-tau": { type: "string", value: "X", help: "Mirostat target entropy (default 5)" },
  "mirostat-eta": { type: "string", value: "X", help: "Mirostat learning rate (default 0.1)" },
  stop: { type: "string", multiple: true, value: "TEXT", help: "stop before this text" },
  "logit-bias": { type: "string", multiple: true, value: "ID=BIAS", help: "add BIAS to token ID's logit (-inf bans it)" },
  "grammar-file": { type: "string", value: "FILE", help: "read the GBNF grammar from FILE" },
};

export function loadOptionsFrom(flags: Flags, extra: Partial<LlamaLoadOptions> = {}): LlamaLoadOptions {
  const flash = flags.oneOf("flash-attn", ["on", "off", "auto"] as const);
  const keep = flags.int("keep", { min: -1 });
  if (keep !== undefined && !flags.bool("context-shift")) throw new UsageError("--keep needs --context-shift");
  return dropUndefined({
    modelPath: flags.required("model"),
    nCtx: flags.int("ctx-size", { min: 0, max: 1 << 24 }),
    nThreads: flags.int("threads", { min: 1, max: 1024 }),
    nThreadsBatch: flags.int("threads-batch", { min: 1, max: 1024 }),
    nBatch: flags.int("batch-size", { min: 1, max: 1 << 20 }),
    nUbatch: flags.int("ubatch-size", { min: 1, max: 1 << 20 }),
    nGpuLayers: flags.int("gpu-layers", { min: -1 }),
    contextShift: flags.bool("context-shift") ? { keep: keep ?? 0 } : undefined,
    flashAttn: flash === undefined ? undefined : flash === "auto" ? "auto" : flash === "on",
    useMmap: flags.bool("no-mmap") ? false : undefined,
    useMlock: flags.bool("mlock") || undefined,
    chatTemplate: chatTemplateFrom(flags),
    jinja: flags.bool("no-jinja") ? false : undefined,
    draft: draftFrom(flags),
    lora: loraFrom(flags.list("lora")),
    mmprojPath: flags.string("mmproj"),
    verbose: flags.bool("verbose") || undefined,
    ...extra,
  });
}

function draftFrom(flags: Flags): LlamaLoadOptions["draft"] {
  const draft = flags.string("draft");
  const nDraft = flags.int("draft-max", { min: 1, max: 256 });
  const pMin = flags.number("draft-p-min", { min: 0, max: 1 });
  const ngramSize = flags.int("draft-ngram-size", { min: 1, max: 1024 });
  if (draft === undefined) {
    if (nDraft !== undefined || pMin !== undefined || ngramSize !== undefined) throw new UsageError("--draft-max, --draft-p-min and --draft-ngram-size need --draft");
    return undefined;
  }
  if (draft === "ngram") {
    if (pMin !== undefined) throw new UsageError("--draft-p-min is for a draft model, not --draft ngram");
    return dropUndefined({ type: "ngram" as const, nDraft, ngramSize });
  }
  if (ngramSize !== undefined) throw new UsageError("--draft-ngram-size is for --draft ngram");
  return dropUndefined({ modelPath: draft, nDraft, pMin });
}

/** FILE[:SCALE], as llama.cpp's --lora / --lora-scaled FILE:SCALE (a path may hold colons: the last one counts when a number follows). */
function loraFrom(entries: string[]): LlamaLoadOptions["lora"] {
  if (entries.length === 0) return undefined;
  return entries.map((entry) => {
    const match = /^(.*):([+-]?(?:\d+(?:\.\d*)?|\.\d+))$/.exec(entry);
    if (match === null) return { path: entry };
    const scale = Number(match[2]);
    if (!Number.isFinite(scale)) throw new UsageError(`--lora: bad scale in ${JSON.stringify(entry)}`);
    return { path: match[1]!, scale };
  });
}

function chatTemplateFrom(flags: Flags): string | undefined {
  const file = flags.string("chat-template-file");
  if (file === undefined) return flags.string("chat-template");
  if (flags.has("chat-template")) throw new UsageError("use either --chat-template or --chat-template-file");
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new UsageError(`--chat-template-file: cannot read ${file}: ${(err as Error).message}`);
  }
}

/** "ID=BIAS" (or llama.cpp's "ID+BIAS" / "ID-BIAS"); a bias of -inf bans the token. */
function parseLogitBias(entries: string[]): Record<number, number> | undefined {
  if (entries.length === 0) return undefined;
  const bias: Record<number, number> = {};
  for (const entry of entries) {
    const match = /^\s*(\d+)\s*(?:=\s*|(?=[+-]))([+-]?(?:inf|infinity|\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*$/i.exec(entry);
    if (!match) throw new UsageError(`--logit-bias needs ID=BIAS, got ${JSON.stringify(entry)}`);
    const text = match[2]!.toLowerCase().replace("infinity", "inf");
    bias[Number(match[1])] = text.endsWith("inf") ? (text.startsWith("-") ? -Infinity : Infinity) : Number(text);
  }
  return bias;
}

export async function samplingOptionsFrom(flags: Flags, readText: (path: string) => Promise<string>): Promise<SamplingOptions> {
  if (flags.has("grammar") && flags.has("grammar-file")) throw new UsageError("use either --grammar or --grammar-file");
  const options: Record<string, unknown> = {};
  for (const { name, flag, scalar, min, max } of scalarFlags) {
    options[name] = scalar === "string" ? flags.string(flag) : scalar === "integer" ? flags.int(flag, { min, max }) : flags.number(flag, { min, max });
  }
  const grammarFile = flags.string("grammar-file");
  if (grammarFile !== undefined) options.grammar = await readText(grammarFile);
  const mirostat = flags.int("mirostat", { min: 0, max: 2 });
  const stop = flags.list("stop");
  return dropUndefined({
    ...(options as SamplingOptions),
    maxTokens: flags.int("max-tokens", { min: 0 }),
    mirostat:
      mirostat === undefined || mirostat === 0
        ? undefined
        : { mode: mirostat as 1 | 2, tau: flags.number("mirostat-tau", { min: 0 }), eta: flags.number("mirostat-eta", { min: 0 }) },
    stop: stop.length > 0 ? stop : undefined,
    logitBias: parseLogitBias(flags.list("logit-bias")),
  });
}

/** The object without its undefined entries, so that the API applies its own defaults. */
export function dropUndefined<T extends object>(object: T): T {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined)) as T;
}
