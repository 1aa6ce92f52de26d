// llama-server's reranking routes, POST /rerank and /reranking (also under /v1): its Jina-style body
// { model, query, documents, top_n } answered with { model, object, usage, results }, or TEI's
// { query, texts, return_text } answered with a bare array of { index, score, text? }.
import type { ServerResponse } from "node:http";
import type { Llama } from "../completion/llama.js";
import type { RerankResult } from "../completion/types.js";
import { LlamaError } from "../errors.js";
import { sendJson, type Route } from "./http.js";
import { ApiError, badRequest, Fields } from "./requests.js";

/** What the routes read of the server. */
export interface RerankServer {
  readonly llama: Llama;
  readonly modelName: string;
  /** Counts work that runs on no sequence while it runs (the metrics' requests_processing). */
  track<T>(work: Promise<T>): Promise<T>;
}

export interface RerankRequest {
  query: string;
  documents: string[];
  /** Results to keep (llama-server's top_n); undefined: all. */
  topN: number | undefined;
  /** TEI's form (the documents under `texts`): a bare array of { index, score }. */
  tei: boolean;
  /** TEI's return_text: each result carries its document. */
  returnText: boolean;
  /** The request's model, which llama-server echoes. */
  model: string | undefined;
}

/** A rerank body checked field by field, as llama-server reads it (documents before texts). */
export function rerankRequest(body: unknown): RerankRequest {
  const f = new Fields(body);
  if (!f.present("query")) throw badRequest("query is required", "query", "missing_required_parameter");
  const query = f.string("query")!;
  const name = f.present("documents") || !f.present("texts") ? "documents" : "texts";
  const documents = f.raw[name];
  if (documents === undefined || documents === null) throw badRequest("documents is required", name, "missing_required_parameter");
  if (!Array.isArray(documents) || !documents.every((d) => typeof d === "string")) throw badRequest(`${name} must be an array of strings`, name);
  return {
    query,
    documents,
    topN: f.int("top_n", { min: 0 }),
    tei: f.present("texts"),
    returnText: f.bool("return_text") ?? false,
    model: f.string("model"),
  };
}

async function rerank(server: RerankServer, body: unknown, res: ServerResponse, signal: AbortSignal): Promise<void> {
  const request = rerankRequest(body);
  const list = await server.track(server.llama.createRerank(request.query, request.documents, { signal })).catch((err: unknown) => {
    // llama-server's answer where it does not rerank.
    if (err instanceof LlamaError && err.code === "UNSUPPORTED") throw new ApiError(501, `this server does not support reranking: ${err.message}`, "not_supported_error", "not_supported");
    throw err;
  });
  const kept = list.results.slice(0, request.topN);
  const teiResult = ({ index, relevance_score }: RerankResult) => ({ index, score: relevance_score, ...(request.returnText ? { text: request.documents[index] } : {}) });
  sendJson(res, 200, request.tei ? kept.map(teiResult) : { ...list, model: request.model ?? server.modelName, results: kept });
}

/** The routes, keyed "METHOD /path" as the server's table. */
export function rerankRoutes(server: RerankServer): Array<[string, Route]> {
  const route: Route = { method: "POST", private: true, generates: true, handle: (body, res, signal) => rerank(server, body, res, signal) };
  return ["/rerank", "/reranking"].map((path) => [`POST ${path}`, route]);
}
