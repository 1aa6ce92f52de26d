// An OpenAI-compatible HTTP server over one Llama, on node:http alone: completions and chat (whole
// or as server-sent events), the Responses API (responses.ts), embeddings, the model list and a
// health check, plus llama-server's utility routes (utility-routes.ts), reranking (rerank-routes.ts)
// and slot files (slots.ts).
// Concurrent requests share the Llama's sequences (continuous batching); the server adds
// authentication, CORS (cors.ts), body and token limits, a bounded queue, a graceful shutdown and
// Prometheus metrics (metrics.ts).
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { basename, resolve } from "node:path";
import type { Llama } from "../completion/llama.js";
import { chunkEvents } from "./events.js";
import type { ServerMetrics } from "./metrics.js";
import {
  ApiError,
  badRequest,
  chatRequest,
  completionRequest,
  embeddingRequest,
  toApiError,
  type RequestLimits,
} from "./requests.js";
import { responsesRequest } from "./responses-request.js";
import { ResponseWriter } from "./responses.js";
import { Cors } from "./cors.js";
import { sendEvents, sendJson, type Route } from "./http.js";
import { rerankRoutes } from "./rerank-routes.js";
import { slotRoute } from "./slots.js";
import { utilityRoutes } from "./utility-routes.js";

export interface ServerOptions {
  llama: Llama;
  /** The model's id in /v1/models and in responses. Default: the file name without .gguf. */
  modelName?: string;
  /** Default "127.0.0.1": only this machine can connect. */
  host?: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** When set, every request but /health needs `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Largest request body. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Most tokens one request may generate (larger max_tokens: 400). Default: the context size. */
  maxTokensCap?: number;
  /** Requests that may wait for a free sequence beyond those being generated (more: 429 with Retry-After). Default 64. */
  maxQueue?: number;
  /** Origins browsers may call from (cors.ts); ["*"]: any, only without apiKey. Default: no CORS. */
  cors?: string[];
  /** The directory of POST /slots/{id} save and restore files. Default: slot actions are off (501). */
  slotSavePath?: string;
  /** Serve Prometheus metrics at GET /metrics (metrics.ts). Default false: /metrics answers 501. */
  metrics?: boolean;
}

/** The Retry-After of a 429 (seconds): a request that ends anywhere makes room in the queue. */
const RETRY_AFTER_S = 1;

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** The request body as JSON, read up to `limit` bytes; `signal` drops a client still sending at shutdown. */
async function readJson(req: IncomingMessage, limit: number, signal: AbortSignal, emptyBody = false): Promise<unknown> {
  const tooLarge = () => new ApiError(413, `the request body exceeds ${limit} bytes`, "invalid_request_error", "request_too_large");
  if (Number(req.headers["content-length"] ?? 0) > limit) throw tooLarge();
  signal.addEventListener("abort", () => req.destroy(), { once: true });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") {
    if (emptyBody) return undefined;
    throw badRequest("the request body must be JSON", null, "invalid_json");
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest(`the request body is not valid JSON: ${(err as Error).message}`, null, "invalid_json");
  }
}

export class OpenAIServer {
  readonly llama: Llama;
  readonly modelName: string;
  readonly parallel: number;
  readonly #server: Server;
  readonly #apiKeyDigest: Buffer | null;
  readonly #maxBodyBytes: number;
  readonly #maxQueue: number;
  readonly #limits: RequestLimits;
  readonly #created = Math.floor(Date.now() / 1000);
  readonly #routes: Map<string, Route>;
  readonly #cors: Cors;
  readonly #slotDir: string | null;
  readonly #metrics: ServerMetrics | null;
  /** Embedding and rerank requests being answered (they run on no sequence). */
  #otherProcessing = 0;
  /** Every request being answered, with the controller that aborts its work. */
  readonly #requests = new Set<AbortController>();
  #generating = 0;
  #closing: Promise<void> | null = null;
  #idle: (() => void) | null = null;

  private constructor(options: ServerOptions, Metrics: typeof ServerMetrics | null) {
    this.llama = options.llama;
    this.modelName = options.modelName ?? basename(options.llama.modelPath).replace(/\.gguf$/i, "");
    this.parallel = options.llama.options.nParallel ?? 1;
    this.#apiKeyDigest = options.apiKey === undefined ? null : digest(options.apiKey);
    this.#maxBodyBytes = options.maxBodyBytes ?? 1 << 20;
    this.#maxQueue = options.maxQueue ?? 64;
    this.#limits = {
      maxTokensCap: options.maxTokensCap ?? options.llama.nCtx,
      nVocab: options.llama.nVocab,
      contextShift: (options.llama.options.contextShift ?? false) !== false,
      adapters: options.llama.options.lora ?? [],
    };
    this.#cors = new Cors(options.cors, options.apiKey !== undefined);
    this.#slotDir = options.slotSavePath === undefined ? null : resolve(options.slotSavePath);
    this.#metrics = Metrics && new Metrics({ llama: this.llama, otherProcessing: () => this.#otherProcessing });
    this.#routes = new Map<string, Route>([
      ["POST /completions", { method: "POST", private: true, generates: true, handle: (b, res, s) => this.#completion(b, res, s) }],
      ["POST /chat/completions", { method: "POST", private: true, generates: true, handle: (b, res, s) => this.#chat(b, res, s) }],
      ["POST /responses", { method: "POST", private: true, generates: true, handle: (b, res, s) => this.#responses(b, res, s) }],
      ["POST /embeddings", { method: "POST", private: true, generates: true, handle: (b, res, s) => this.#embeddings(b, res, s) }],
      ["GET /models", { method: "GET", private: true, generates: false, handle: async (_b, res) => sendJson(res, 200, { object: "list", data: [this.#model()] }) }],
      ["GET /health", { method: "GET", private: false, generates: false, handle: async (_b, res) => this.#health(res) }],
      // As llama-server's, it needs the API key.
      ["GET /metrics", { method: "GET", private: true, generates: false, handle: (_b, res) => this.#sendMetrics(res) }],
      // llama-server's: the adapters loaded at start and the scales requests get when they name none.
      ["GET /lora-adapters", { method: "GET", private: true, generates: false, handle: async (_b, res) => sendJson(res, 200, this.#loraList()) }],
      ["POST /lora-adapters", { method: "POST", private: true, generates: false, handle: async (b, res) => this.#setLoraScales(b, res) }],
      ...utilityRoutes({ llama: this.llama, modelName: this.modelName, parallel: this.parallel, limits: this.#limits }),
      ...rerankRoutes({ llama: this.llama, modelName: this.modelName, track: (work) => this.#track(work) }),
    ]);
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  /** Starts a server and resolves once it listens. */
  static async listen(options: ServerOptions): Promise<OpenAIServer> {
    // prom-client loads only for a server that serves metrics.
    const Metrics = options.metrics ? (await import("./metrics.js")).ServerMetrics : null;
    const server = new OpenAIServer(options, Metrics);
    await new Promise<void>((resolve, reject) => {
      server.#server.once("error", reject);
      server.#server.listen(options.port ?? 8080, options.host ?? "127.0.0.1", () => {
        server.#server.off("error", reject);
        resolve();
      });
    });
    return server;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** The base URL of the OpenAI API, e.g. http://127.0.0.1:8080/v1. */
  get url(): string {
    const { address, family } = this.#server.address() as AddressInfo;
    return `http://${family === "IPv6" ? `[${address}]` : address}:${this.port}/v1`;
  }

  /** Requests running the model or waiting for it. */
  get pending(): number {
    return this.#generating;
  }

  #model() {
    const { vision, audio } = this.llama.capabilities;
    // As llama-server's model list: what the model reads besides text.
    const input = ["text", ...(vision ? ["image"] : []), ...(audio ? ["audio"] : [])];
    return { id: this.modelName, object: "model", created: this.#created, owned_by: "llama-napi", input_modalities: input, output_modalities: ["text"] };
  }

  #health(res: ServerResponse): void {
    const status = this.#closing ? "shutting down" : "ok";
    sendJson(res, this.#closing ? 503 : 200, { status, parallel: this.parallel, active: this.llama.active, queued: this.llama.queued });
  }

  #authorized(req: IncomingMessage): boolean {
    if (this.#apiKeyDigest === null) return true;
    const match = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? "");
    return match !== null && timingSafeEqual(digest(match[1]!.trim()), this.#apiKeyDigest);
  }

  /** GET /v1/models/{id}: the model, if `id` names it. */
  #modelRoute(encodedId: string): Route {
    return {
      method: "GET",
      private: true,
      generates: false,
      handle: async (_b, res) => {
        if (encodedId !== encodeURIComponent(this.modelName)) {
          throw new ApiError(404, `the model ${JSON.stringify(encodedId)} does not exist`, "invalid_request_error", "model_not_found", "model");
        }
        sendJson(res, 200, this.#model());
      },
    };
  }

  /** The route of a request (or of the method a preflight asks about): 404 for an unknown path, 405 for another method. */
  #route(req: IncomingMessage, method = req.method): Route {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname.replace(/\/+$/, "").replace(/^\/v1(?=\/)/, "");
    const modelId = /^\/models\/(.+)$/.exec(path);
    const slotId = /^\/slots\/([^/]+)$/.exec(path);
    const pattern = modelId ? this.#modelRoute(modelId[1]!) : slotId ? slotRoute(this.llama, this.#slotDir, slotId[1]!, url.searchParams.get("action")) : undefined;
    const route = pattern ?? this.#routes.get(`${method} ${path}`);
    if (route !== undefined && route.method === method) return route;
    const allowed = pattern ? [pattern.method] : [...this.#routes].filter(([key]) => key.endsWith(` ${path}`)).map(([, r]) => r.method);
    if (allowed.length === 0) throw new ApiError(404, `no such endpoint: ${method} ${path}`, "not_found_error", "not_found");
    throw new ApiError(405, `${path} takes ${allowed.join(", ")}, not ${method}`, "invalid_request_error", "method_not_allowed", null, { Allow: allowed.join(", ") });
  }

  /** A CORS preflight: 204 for an allowed origin asking about a route that exists; 403 for another origin. */
  #preflight(req: IncomingMessage, res: ServerResponse): void {
    const headers = this.#cors.preflightHeaders(req);
    if (headers === null) throw new ApiError(403, `the origin ${JSON.stringify(req.headers.origin ?? null)} is not allowed (--cors)`, "permission_error", "cors_origin_not_allowed");
    this.#route(req, req.headers["access-control-request-method"] ?? "OPTIONS");
    res.writeHead(204, headers);
    res.end();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const abort = new AbortController();
    this.#requests.add(abort);
    // A client that goes away mid-request frees its sequence at once.
    res.once("close", () => {
      if (!res.writableFinished) abort.abort(new Error("client disconnected"));
    });
    let release: (() => void) | null = null;
    this.#cors.apply(req, res);
    try {
      if (this.#closing) throw new ApiError(503, "the server is shutting down", "unavailable_error", "shutting_down");
      if (this.#cors.isPreflight(req)) return this.#preflight(req, res);
      const route = this.#route(req);
      if (route.private && !this.#authorized(req)) {
        throw new ApiError(401, "invalid or missing API key: send Authorization: Bearer <key>", "authentication_error", "invalid_api_key", null, {
          "WWW-Authenticate": "Bearer",
        });
      }
      const body = route.method === "POST" ? await readJson(req, this.#maxBodyBytes, abort.signal, route.emptyBody) : undefined;
      if (route.generates) {
        release = this.#admit();
        // A request abandoned while it waits leaves the queue now, not when a sequence frees up.
        abort.signal.addEventListener("abort", release, { once: true });
      }
      await route.handle(body, res, abort.signal);
    } catch (err) {
      const error = toApiError(err);
      // The rest of an oversized body is not read: close the connection instead.
      const close: Record<string, string> = error.status === 413 || this.#closing ? { Connection: "close" } : {};
      sendJson(res, error.status, error.body, { ...error.headers, ...close });
    } finally {
      release?.();
      this.#requests.delete(abort);
      if (this.#requests.size === 0) this.#idle?.();
    }
  }

  /** Counts a request that runs the model; 429 when the sequences are busy and the queue is full. */
  #admit(): () => void {
    if (this.#generating >= this.parallel + this.#maxQueue) {
      const message = `the server is busy: ${this.parallel} requests running and ${this.#maxQueue} queued`;
      throw new ApiError(429, message, "rate_limit_error", "queue_full", null, { "Retry-After": String(RETRY_AFTER_S) });
    }
    this.#generating++;
    let released = false;
    return () => {
      if (!released) this.#generating--;
      released = true;
    };
  }

  async #completion(body: unknown, res: ServerResponse, signal: AbortSignal): Promise<void> {
    const { prompt, options, stream } = completionRequest(body, this.#limits);
    if (stream) return sendEvents(res, this.llama.createCompletion(prompt, { ...options, stream: true, signal }), signal, chunkEvents(this.modelName));
    const completion = await this.llama.createCompletion(prompt, { ...options, stream: false, signal });
    sendJson(res, 200, { ...completion, model: this.modelName });
  }

  async #chat(body: unknown, res: ServerResponse, signal: AbortSignal): Promise<void> {
    const { options, stream } = chatRequest(body, this.#limits);
    if (stream) return sendEvents(res, this.llama.createChatCompletion({ ...options, stream: true, signal }), signal, chunkEvents(this.modelName));
    const completion = await this.llama.createChatCompletion({ ...options, stream: false, signal });
    sendJson(res, 200, { ...completion, model: this.modelName });
  }

  /** The Responses API, as a chat completion (lib/server/responses-request.ts, responses.ts). */
  async #responses(body: unknown, res: ServerResponse, signal: AbortSignal): Promise<void> {
    const { options, stream, settings } = responsesRequest(body, this.#limits);
    const response = new ResponseWriter(settings, this.modelName);
    if (stream) {
      const chunks = this.llama.createChatCompletion({ ...options, stream: true, streamOptions: { includeUsage: true }, signal });
      return sendEvents(res, response.events(chunks), signal, response);
    }
    sendJson(res, 200, response.whole(await this.llama.createChatCompletion({ ...options, stream: false, signal })));
  }

  /** GET /metrics: the exposition text, or (as llama-server's) 501 when the server serves no metrics. */
  async #sendMetrics(res: ServerResponse): Promise<void> {
    if (this.#metrics === null) throw new ApiError(501, "this server serves no metrics: start it with --metrics", "not_supported_error", "not_supported");
    const text = await this.#metrics.render();
    if (res.destroyed) return;
    res.writeHead(200, { "Content-Type": this.#metrics.contentType, "Content-Length": Buffer.byteLength(text) });
    res.end(text);
  }

  #loraList(): Array<{ id: number; path: string; scale: number }> {
    return this.#limits.adapters.map((a, id) => ({ id, path: a.path, scale: a.scale ?? 1 }));
  }

  /** POST /lora-adapters [{ id, scale }]: the scales of the listed adapters, for requests that name none. */
  async #setLoraScales(body: unknown, res: ServerResponse): Promise<void> {
    const current = this.#limits.adapters;
    const list = Array.isArray(body) ? body : undefined;
    const entries = list?.map((e: { id?: unknown; scale?: unknown } | null) => [e?.id, e?.scale] as const);
    if (entries === undefined || entries.some(([id, scale]) => !Number.isInteger(id) || (id as number) < 0 || (id as number) >= current.length || typeof scale !== "number" || !Number.isFinite(scale))) {
      throw badRequest(`the body must be an array of { id, scale }, with ids 0 to ${current.length - 1}`);
    }
    const scales = new Map(entries as Array<readonly [number, number]>);
    this.#limits.adapters = current.map((a, id) => ({ path: a.path, scale: scales.get(id) ?? a.scale ?? 1 }));
    sendJson(res, 200, this.#loraList());
  }

  /** Counts work that runs on no sequence while it runs. */
  #track<T>(work: Promise<T>): Promise<T> {
    this.#otherProcessing++;
    return work.finally(() => this.#otherProcessing--);
  }

  async #embeddings(body: unknown, res: ServerResponse, signal: AbortSignal): Promise<void> {
    const { input, encoding } = embeddingRequest(body);
    const list = await this.#track(this.llama.createEmbedding(input, { signal }));
    const data = list.data.map((item) => ({
      ...item,
      embedding: encoding === "base64" ? Buffer.from(Float32Array.from(item.embedding).buffer).toString("base64") : item.embedding,
    }));
    sendJson(res, 200, { ...list, data, model: this.modelName });
  }

  /**
   * Stops accepting connections, lets the requests in flight finish for up to `graceMs`, then aborts
   * the rest (streams end with an error event, others get 503) and closes every connection.
   */
  close(graceMs = 10_000): Promise<void> {
    this.#closing ??= (async () => {
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      this.#server.closeIdleConnections();
      const idle = new Promise<void>((resolve) => {
        this.#idle = resolve;
        if (this.#requests.size === 0) resolve();
      });
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
      await Promise.race([idle, graceOver]);
      clearTimeout(timer);
      for (const request of this.#requests) request.abort(new Error("server shutting down"));
      await idle;
      this.#server.closeAllConnections();
      await closed;
    })();
    return this.#closing;
  }
}

/** Starts an OpenAI-compatible server for `options.llama`; see OpenAIServer. */
export function startServer(options: ServerOptions): Promise<OpenAIServer> {
  return OpenAIServer.listen(options);
}
