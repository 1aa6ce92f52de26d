// llama-server's utility routes over the server's Llama, in its shapes: /tokenize, /detokenize,
// /apply-template (the prompt a chat request becomes), /props, and /infill (fill in the middle).
import type { ServerResponse } from "node:http";
import type { Llama } from "../completion/llama.js";
import { MEDIA_MARKER } from "../completion/media.js";
import type { Completion, CompletionChunk } from "../completion/types.js";
import { buildInfo } from "../core/backend.js";
import { scalarSamplingParameters } from "../core/sampling.js";
import { dataEvents } from "./events.js";
import { sendEvents, sendJson, type Route } from "./http.js";
import { checkInfill, infillPrompt } from "./infill.js";
import { chatRequest, type RequestLimits } from "./requests.js";
import { detokenizeRequest, infillRequest, tokenizeRequest, type MixedContent } from "./utility-requests.js";

/** What the routes read of the server. */
export interface UtilityServer {
  readonly llama: Llama;
  readonly modelName: string;
  readonly parallel: number;
  /** The server's request limits (its adapters' scales change with POST /lora-adapters). */
  readonly limits: RequestLimits;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** A token's text as llama-server's with_pieces gives it: a string when valid UTF-8, else its bytes. */
function pieceOf(bytes: Uint8Array): string | number[] {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return Array.from(bytes);
  }
}

/** llama-server's tokenize_mixed: strings tokenized (only the first element may get a BOS), ids as they are. */
function tokenizeMixed(llama: Llama, content: MixedContent, addSpecial: boolean, parseSpecial: boolean): number[] {
  const parts = typeof content === "string" ? [content] : content;
  return parts.flatMap((part, i) => (typeof part === "number" ? [part] : llama.tokenize(part, { addBos: addSpecial && i === 0, special: parseSpecial })));
}

/** The sampling defaults a request gets, under llama-server's names (completions'; chats default to temperature 0.2). */
function samplingDefaults(llama: Llama): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  for (const { name, scalar, default: value } of scalarSamplingParameters()) {
    if (scalar !== "string" && value !== undefined) params[name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = value;
  }
  return { ...params, mirostat: 0, mirostat_tau: 5, mirostat_eta: 0.1, seed: llama.options.seed ?? -1 };
}

function props(server: UtilityServer): Record<string, unknown> {
  const { llama } = server;
  const { bos, eos } = llama.model.info;
  const tokenText = (token: number) => (token >= 0 ? Buffer.from(llama.model.tokenBytes(token, true)).toString("utf8") : "");
  return {
    default_generation_settings: { n_ctx: llama.nCtx, params: samplingDefaults(llama) },
    total_slots: server.parallel,
    model_alias: server.modelName,
    model_path: llama.modelPath,
    modalities: { ...llama.capabilities, video: false },
    media_marker: MEDIA_MARKER,
    chat_template: llama.options.chatTemplate ?? llama.model.chatTemplate() ?? "",
    bos_token: tokenText(bos),
    eos_token: tokenText(eos),
    build_info: `llama.cpp ${buildInfo().llamaCommit}`,
  };
}

/** llama-server's /completion fields for an infill's whole answer or its last event. */
function infillResult(server: UtilityServer, content: string, usage: Completion["usage"], finish: string | null) {
  return {
    index: 0,
    content,
    tokens: [],
    id_slot: -1,
    stop: true,
    model: server.modelName,
    tokens_predicted: usage.completion_tokens,
    tokens_evaluated: usage.prompt_tokens,
    truncated: false,
    finish_reason: finish,
  };
}

/** An infill's stream as llama-server's events: the text as it comes, then the totals (no [DONE]). */
async function* infillEvents(server: UtilityServer, chunks: AsyncIterable<CompletionChunk>, promptTokens: number) {
  let finish: string | null = null;
  for await (const chunk of chunks) {
    const choice = chunk.choices[0];
    if (choice?.finish_reason) finish = choice.finish_reason;
    if (choice !== undefined && choice.text !== "") yield { index: 0, content: choice.text, tokens: [], stop: false, id_slot: -1, tokens_evaluated: promptTokens };
    if (chunk.usage) yield infillResult(server, "", chunk.usage, finish);
  }
}

async function infill(server: UtilityServer, body: unknown, res: ServerResponse, signal: AbortSignal): Promise<void> {
  const { llama } = server;
  checkInfill(llama);
  const request = infillRequest(body, server.limits);
  const prompt = infillPrompt(llama, request);
  if (request.stream) {
    const chunks = llama.createCompletion(prompt, { ...request.options, stream: true, streamOptions: { includeUsage: true }, signal });
    return sendEvents(res, infillEvents(server, chunks, prompt.length), signal, dataEvents);
  }
  const completion = await llama.createCompletion(prompt, { ...request.options, stream: false, signal });
  const choice = completion.choices[0]!;
  sendJson(res, 200, infillResult(server, choice.text, completion.usage, choice.finish_reason));
}

/** The routes, keyed "METHOD /path" as the server's table. */
export function utilityRoutes(server: UtilityServer): Array<[string, Route]> {
  const { llama } = server;
  const route = (method: "GET" | "POST", handle: Route["handle"], generates = false): Route => ({ method, private: true, generates, handle });
  return [
    [
      "POST /tokenize",
      route("POST", async (body, res) => {
        const request = tokenizeRequest(body, llama.nVocab);
        const tokens = tokenizeMixed(llama, request.content, request.addSpecial, request.parseSpecial);
        const listed = request.withPieces ? tokens.map((id) => ({ id, piece: pieceOf(llama.model.tokenBytes(id, true)) })) : tokens;
        sendJson(res, 200, { tokens: listed });
      }),
    ],
    [
      "POST /detokenize",
      route("POST", async (body, res) => {
        // llama-server's: the tokens' pieces, special tokens as their text, no space dropped.
        const tokens = detokenizeRequest(body, llama.nVocab);
        const content = Buffer.concat(tokens.map((t) => llama.model.tokenBytes(t, true))).toString("utf8");
        sendJson(res, 200, { content });
      }),
    ],
    [
      "POST /apply-template",
      route("POST", async (body, res) => {
        // The chat route's request checks and template, without generating.
        const { options: o } = chatRequest(body, server.limits);
        const format = { tools: o.tools, toolChoice: o.toolChoice, parallelToolCalls: o.parallelToolCalls, chatTemplateKwargs: o.chatTemplateKwargs, reasoningFormat: o.reasoningFormat };
        const defined = Object.fromEntries(Object.entries(format).filter(([, value]) => value !== undefined));
        sendJson(res, 200, { prompt: llama.formatChat(o.messages, defined).prompt });
      }),
    ],
    ["GET /props", route("GET", async (_body, res) => sendJson(res, 200, props(server)))],
    ["POST /infill", route("POST", (body, res, signal) => infill(server, body, res, signal), true)],
  ];
}
