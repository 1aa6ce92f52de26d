// --cors on `llama-napi serve`: no CORS header at all by default; the listed origins get their
// preflights answered and their responses marked readable, other origins nothing; "*" never
// beside an API key.
import { Readable, Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../lib/cli/main.js";
import { Llama } from "../../lib/index.js";
import { startServer, type OpenAIServer } from "../../lib/server/index.js";
import { modelPath } from "../helpers.js";
import { json, raw, type RawResponse } from "./raw-http.js";

const STORIES = () => modelPath("stories260K.gguf");
const KEY = "test-key";
const APP = "http://localhost:3000";
const OTHER = "https://evil.example";

function preflight(base: string, path: string, origin: string, method = "POST", headers = "authorization, content-type, x-stainless-os"): Promise<RawResponse> {
  return raw(base, "OPTIONS", path, { headers: { Origin: origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers } });
}

const corsHeaders = (res: RawResponse) => Object.keys(res.headers).filter((name) => name.startsWith("access-control-"));

describe("CORS", () => {
  let llama: Llama;
  const servers: OpenAIServer[] = [];
  let off: string;
  let listed: string;
  let any: string;

  beforeAll(async () => {
    llama = await Llama.load({ modelPath: STORIES(), nCtx: 128, nThreads: 1 });
    const start = async (options: { apiKey?: string; cors?: string[] }) => {
      const server = await startServer({ llama, port: 0, maxTokensCap: 4, ...options });
      servers.push(server);
      return server.url.replace(/\/v1$/, "");
    };
    off = await start({ apiKey: KEY });
    listed = await start({ apiKey: KEY, cors: [APP, "https://app.example.com:8443"] });
    any = await start({ cors: ["*"] });
  });
  afterAll(async () => {
    for (const server of servers) await server.close(0);
    await llama?.dispose();
  });

  it("off by default: no CORS header on any response, and OPTIONS is an unknown method", async () => {
    const answers = [
      await raw(off, "GET", "/v1/models", { headers: { Origin: APP, Authorization: `Bearer ${KEY}` } }),
      await raw(off, "GET", "/v1/models", { headers: { Origin: APP } }),
      await raw(off, "GET", "/health", { headers: { Origin: APP } }),
      await preflight(off, "/v1/chat/completions", APP),
    ];
    for (const res of answers) {
      expect(corsHeaders(res)).toEqual([]);
      expect(res.headers.vary).toBeUndefined();
    }
    expect(answers[0]!.status).toBe(200);
    expect(answers[3]!.status).toBe(405);
  });

  it("a listed origin's preflight: 204 with the origin, methods, its headers and Max-Age, no API key needed", async () => {
    for (const [path, method] of [["/v1/chat/completions", "POST"], ["/v1/models", "GET"], ["/tokenize", "POST"], ["/slots/0?action=save", "POST"]] as const) {
      const res = await preflight(listed, path, APP, method);
      expect(res.status, path).toBe(204);
      expect(res.body).toBe("");
      expect(res.headers).toMatchObject({
        "access-control-allow-origin": APP,
        "access-control-allow-methods": "GET, POST, OPTIONS",
        "access-control-allow-headers": "authorization, content-type, x-stainless-os",
        "access-control-max-age": "600",
      });
      expect(res.headers.vary).toMatch(/^Origin\b/);
      expect(res.headers["access-control-allow-credentials"]).toBeUndefined();
    }
    expect((await preflight(listed, "/health", "https://app.example.com:8443", "GET")).headers["access-control-allow-origin"]).toBe("https://app.example.com:8443");
    // A malformed header list is not echoed.
    expect((await preflight(listed, "/v1/models", APP, "GET", "x y; z=\"1\"")).headers["access-control-allow-headers"]).toBe("Authorization, Content-Type");
  });

  it("another origin's preflight: 403 with no allow header; a route that does not exist or that method: 404, 405", async () => {
    for (const origin of [OTHER, "http://localhost:3001", "null", "http://LOCALHOST:3000"]) {
      const res = await preflight(listed, "/v1/chat/completions", origin);
      expect(res.status, origin).toBe(403);
      expect(corsHeaders(res), origin).toEqual([]);
      expect(json(res).error).toMatchObject({ type: "permission_error", code: "cors_origin_not_allowed" });
    }
    expect((await preflight(listed, "/v1/nothing", APP)).status).toBe(404);
    expect((await preflight(listed, "/v1/models", APP, "DELETE")).status).toBe(405);
  });

  it("responses name a listed origin (errors too, so that the page can read them) and never another; Vary: Origin on all", async () => {
    const ok = await raw(listed, "GET", "/v1/models", { headers: { Origin: APP, Authorization: `Bearer ${KEY}` } });
    expect(ok.status).toBe(200);
    expect(ok.headers["access-control-allow-origin"]).toBe(APP);
    expect(ok.headers.vary).toBe("Origin");
    const unauthorized = await raw(listed, "POST", "/v1/completions", { headers: { Origin: APP }, body: { prompt: "x" } });
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers["access-control-allow-origin"]).toBe(APP);
    const stream = await raw(listed, "POST", "/v1/completions", { headers: { Origin: APP, Authorization: `Bearer ${KEY}` }, body: { prompt: "Once", max_tokens: 2, stream: true } });
    expect(stream.headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(stream.headers["access-control-allow-origin"]).toBe(APP);

    const other = await raw(listed, "GET", "/v1/models", { headers: { Origin: OTHER, Authorization: `Bearer ${KEY}` } });
    expect(other.status).toBe(200);
    expect(corsHeaders(other)).toEqual([]);
    expect(other.headers.vary).toBe("Origin");
    const none = await raw(listed, "GET", "/health");
    expect(corsHeaders(none)).toEqual([]);
    expect(none.headers.vary).toBe("Origin");
  });

  it('"*" without an API key: every origin, as "*"', async () => {
    const res = await preflight(any, "/v1/completions", OTHER);
    expect(res.status).toBe(204);
    expect(res.headers["access-control-allow-origin"]).toBe("*");
    expect((await raw(any, "GET", "/v1/models", { headers: { Origin: OTHER } })).headers["access-control-allow-origin"]).toBe("*");
  });

  it('"*" with an API key, or a list that is not origins, is refused: TypeError from startServer, a usage error from the CLI', async () => {
    await expect(startServer({ llama, port: 0, apiKey: KEY, cors: ["*"] })).rejects.toThrow(/cannot be combined with an API key/);
    for (const cors of [[], ["*", APP], ["localhost:3000"], ["http://x.example/path"], ["http://x.example/"], ["ftp://x.example"], ["null"], ["HTTP://X.EXAMPLE"]]) {
      await expect(startServer({ llama, port: 0, cors }), JSON.stringify(cors)).rejects.toBeInstanceOf(TypeError);
    }
    const cases: Array<[string[], RegExp]> = [
      [["--cors", "*", "--api-key", KEY], /--cors "\*" cannot be combined with an API key/],
      [["--cors", `${APP},https://x.example/app`], /is not an origin/],
      [["--cors", `*,${APP}`], /stands alone/],
    ];
    for (const [flags, message] of cases) {
      const stderr = new Capture();
      const stdin = Object.assign(Readable.from([]), { isTTY: false });
      const code = await runCli(["serve", "-m", STORIES(), ...flags], { stdin, stdout: new Capture(), stderr });
      expect(code, flags.join(" ")).toBe(2);
      expect(stderr.text).toMatch(message);
    }
  });
});

class Capture extends Writable {
  text = "";
  isTTY = false;
  columns = 80;
  override _write(chunk: Buffer | string, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}
