// What a route is, and what its handler writes with: JSON answers and server-sent event streams.
import type { ServerResponse } from "node:http";
import type { EventFormat } from "./events.js";
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
 * Streams `items` as server-sent events in `format` (events.ts); an error after the headers becomes
 * the format's error event. A client that reads slowly holds its generation back (streams are
 * pulled) rather than have the server buffer what it has not read.
 */
export async function sendEvents<T>(res: ServerResponse, items: AsyncIterable<T>, signal: AbortSignal, format: EventFormat<T>): Promise<void> {
  res.writeHead(200, SSE_HEADERS);
  // The client learns at once that its request was taken, even while it waits for a sequence.
  res.flushHeaders();
  try {
    for await (const item of items) {
      if (!res.write(format.event(item))) await drained(res, signal);
    }
    if (format.end !== "") res.write(format.end);
  } catch (err) {
    // Nobody to tell when the client is gone; otherwise (an error, or shutdown) say why the stream ends.
    if (!res.destroyed) res.write(format.error(toApiError(err)));
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
