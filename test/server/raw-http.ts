// Raw HTTP for the server tests: any method, headers and body, the answer's status, headers and text.
import { request as httpRequest, type IncomingMessage } from "node:http";

export interface RawResponse {
  status: number;
  headers: IncomingMessage["headers"];
  body: string;
}

/** One HTTP request; `body` is a string sent as is, or a value sent as JSON. */
export function raw(base: string, method: string, path: string, options: { headers?: Record<string, string>; body?: unknown } = {}): Promise<RawResponse> {
  const body = options.body === undefined || typeof options.body === "string" ? options.body : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(new URL(path, base), { method, headers: options.headers, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** The JSON of a response's body. */
export function json(res: RawResponse): Record<string, unknown> {
  return JSON.parse(res.body) as Record<string, unknown>;
}

/** The data lines of a server-sent event stream, parsed. */
export function events(body: string): unknown[] {
  return body
    .split("\n\n")
    .filter((block) => block.startsWith("data: "))
    .map((block) => block.slice("data: ".length))
    .map((data) => (data === "[DONE]" ? data : JSON.parse(data)));
}
