// What a route is, and what its handler writes with: JSON answers and server-sent event streams.
import type { ServerResponse } from "node:http";
import { toApiError } from "./requests.js";

export type Handler = (body: unknown, res: ServerResponse, signal: AbortSignal) => Promise<void>;

export interface Route {
  method: "GET" | "POST";
  /** Whether the request needs the API key. */
  private: boolean;
  /** Whether it runs the model, and so counts against the queue. */
  generates: boolean;
  /** A POST whose body may be empty (the handler then gets undefined). */
  emptyBody?: boolean;
  handle: Handler;
}

const SSE_HEADERS = {
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-cache",
  Connection: "keep-alive",
  "X-Accel-Buffering": "no",
};

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * Streams `events` as server-sent events, then `data: [DONE]` when `done` is set; an error after the
 * headers becomes an error event. A client that reads slowly holds its generation back (streams are
 * pulled) rather than have the server buffer what it has not read.
 */
export async function sendEvents(res: ServerResponse, events: AsyncIterable<unknown>, signal: AbortSignal, done: boolean): Promise<void> {
  res.writeHead(200, SSE_HEADERS);
  // The client learns at once that its request was taken, even while it waits for a sequence.
  res.flushHeaders();
  try {
    for await (const event of events) {
      if (!res.write(`data: ${JSON.stringify(event)}\n\n`)) await drained(res, signal);
    }
    if (done) res.write("data: [DONE]\n\n");
  } catch (err) {
    // Nobody to tell when the client is gone; otherwise (an error, or shutdown) say why the stream ends.
    if (!res.destroyed) res.write(`data: ${JSON.stringify(toApiError(err).body)}\n\n`);
  } finally {
    res.end();
  }
}

/** Resolves once `res` can take more, its connection closes, or `signal` aborts (shutdown, say). */
function drained(res: ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
    signal.addEventListener("abort", done);
    if (signal.aborted || res.destroyed) done();
  });
}
