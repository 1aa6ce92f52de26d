// llama-server's own request bodies (/tokenize, /detokenize, /infill, /slots) checked field by field,
// each mistake a 400 naming its field, as requests.ts does for OpenAI's.
import type { CompletionOptions } from "../completion/llama.js";
import { badRequest, Fields, maxTokensOf, samplingOf, type RequestLimits } from "./requests.js";

/** Text, or llama-server's mixed form: strings and token ids in one array. */
export type MixedContent = string | Array<string | number>;

function mixedOf(f: Fields, name: string, nVocab: number): MixedContent {
  const value = f.raw[name];
  if (value === undefined || value === null) throw badRequest(`${name} is required`, name, "missing_required_parameter");
  if (typeof value === "string") return value;
  if (!Array.isArray(value)) throw badRequest(`${name} must be a string or an array of strings and token ids`, name);
  value.forEach((part, i) => {
    if (typeof part === "string") return;
    if (!Number.isInteger(part) || (part as number) < 0 || (part as number) >= nVocab) {
      throw badRequest(`${name}[${i}] must be a string or a token id of this model (0 to ${nVocab - 1})`, name);
    }
  });
  return value as Array<string | number>;
}

/** An array of token ids of this model. */
function tokensOf(f: Fields, name: string, nVocab: number): number[] {
  const value = f.raw[name];
  if (value === undefined || value === null) throw badRequest(`${name} is required`, name, "missing_required_parameter");
  if (!Array.isArray(value)) throw badRequest(`${name} must be an array of token ids`, name);
  const bad = value.findIndex((t) => !Number.isInteger(t) || t < 0 || t >= nVocab);
  if (bad >= 0) throw badRequest(`${name}[${bad}] is not a token id of this model (0 to ${nVocab - 1})`, name);
  return value as number[];
}

export interface TokenizeRequest {
  content: MixedContent;
  addSpecial: boolean;
  parseSpecial: boolean;
  withPieces: boolean;
}

/** POST /tokenize, with llama-server's defaults: no BOS, special tokens parsed. */
export function tokenizeRequest(body: unknown, nVocab: number): TokenizeRequest {
  const f = new Fields(body);
  return {
    content: mixedOf(f, "content", nVocab),
    addSpecial: f.bool("add_special") ?? false,
    parseSpecial: f.bool("parse_special") ?? true,
    withPieces: f.bool("with_pieces") ?? false,
  };
}

/** POST /detokenize. */
export function detokenizeRequest(body: unknown, nVocab: number): number[] {
  return tokensOf(new Fields(body), "tokens", nVocab);
}

export interface InfillRequest {
  prefix: MixedContent;
  suffix: MixedContent;
  /** Other files' text, put before the prefix (repo-level FIM). */
  extra: Array<{ filename: string; text: string }>;
  /** Text after the prefix, before the suffix token. */
  prompt: string;
  /** The max_tokens a request asked for, null: none (then the cap applies). */
  nPredict: number | null;
  options: CompletionOptions;
  stream: boolean;
}

function extraOf(f: Fields): InfillRequest["extra"] {
  const value = f.raw.input_extra;
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw badRequest('input_extra must be an array of { "filename": string, "text": string }', "input_extra");
  return value.map((chunk: unknown, i) => {
    const c = chunk as { text?: unknown; filename?: unknown } | null;
    if (typeof c !== "object" || c === null || Array.isArray(c)) throw badRequest(`input_extra[${i}] must be an object`, "input_extra");
    if (typeof c.text !== "string") throw badRequest(`input_extra[${i}].text must be a string`, "input_extra");
    if (c.filename !== undefined && c.filename !== null && typeof c.filename !== "string") throw badRequest(`input_extra[${i}].filename must be a string`, "input_extra");
    return { text: c.text, filename: (c.filename as string | undefined | null) ?? "tmp" };
  });
}

/** POST /infill: llama-server's fill-in-the-middle request, its sampling fields as /completions'. */
export function infillRequest(body: unknown, limits: RequestLimits): InfillRequest {
  const f = new Fields(body);
  const prefix = mixedOf(f, "input_prefix", limits.nVocab);
  const suffix = mixedOf(f, "input_suffix", limits.nVocab);
  // llama-server's n_predict -1: no limit but the server's.
  const asked = f.raw.n_predict === -1 ? undefined : f.int("n_predict", { min: 1 });
  const names = asked === undefined ? ["max_tokens"] : ["n_predict"];
  const maxTokens = maxTokensOf(f, names, limits.maxTokensCap, limits.maxTokensCap);
  const options: CompletionOptions = { ...samplingOf(f, limits), maxTokens };
  const nPredict = asked ?? f.int("max_tokens") ?? null;
  return { prefix, suffix, extra: extraOf(f), prompt: f.string("prompt") ?? "", nPredict, options, stream: f.bool("stream") ?? false };
}

export type SlotAction = { action: "save" | "restore"; id: number; filename: string } | { action: "erase"; id: number };

// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f:*?"<>|/\\\u2215\u2216\uff0e\ufffd\ufeff]/u;

/**
 * A slot file's name as llama-server's fs_validate_filename takes it: a plain name within the slot
 * directory, so no separator, "..", NUL or other control character, no name Windows would change.
 */
function filenameOf(f: Fields): string {
  const name = f.raw.filename;
  if (name === undefined || name === null) throw badRequest("filename is required", "filename", "missing_required_parameter");
  if (typeof name !== "string") throw badRequest("filename must be a string", "filename");
  const why =
    name === "" ? "is empty"
    : Buffer.byteLength(name) > 255 ? "is longer than 255 bytes"
    : FORBIDDEN.test(name) ? "holds a path separator, a control character or one of : * ? \" < > |"
    : /[\ud800-\udfff]/.test(name.replace(/[\ud800-\udbff][\udc00-\udfff]/g, "")) ? "is not valid UTF-8"
    : name.includes("..") ? 'holds ".."'
    : name === "." || name.startsWith(" ") || name.endsWith(" ") || name.endsWith(".") ? "starts or ends with a space, or ends with a dot"
    : null;
  if (why !== null) throw badRequest(`filename ${why}: it must be a plain file name inside the slot directory`, "filename", "invalid_filename");
  return name;
}

/** POST /slots/{id}?action=save|restore|erase, with { filename } for save and restore. */
export function slotAction(idText: string, action: string | null, body: unknown, nSlots: number): SlotAction {
  const id = /^\d{1,9}$/.test(idText) ? Number(idText) : NaN;
  if (!(id < nSlots)) throw badRequest(`the slot id must be 0 to ${nSlots - 1}, got ${JSON.stringify(idText)}`, "id_slot");
  if (action !== "save" && action !== "restore" && action !== "erase") {
    throw badRequest(`action must be "save", "restore" or "erase", got ${JSON.stringify(action)}`, "action");
  }
  if (action === "erase") return { action, id };
  return { action, id, filename: filenameOf(new Fields(body)) };
}
