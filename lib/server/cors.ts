// Cross-origin access for browsers (--cors): off by default, when no response carries a CORS
// header. On, responses to the listed origins name that origin (Access-Control-Allow-Origin, with
// Vary: Origin) and their preflight OPTIONS requests get 204 with the methods and headers allowed;
// other origins get no allow header, their preflights a 403. "*" allows every origin, and only
// without an API key: a key-protected server lists the origins it trusts.
import type { IncomingMessage, ServerResponse } from "node:http";

const ALLOW_METHODS = "GET, POST, OPTIONS";
const DEFAULT_HEADERS = "Authorization, Content-Type";
/** How long a browser may reuse a preflight's answer, in seconds. */
const MAX_AGE = "600";
/** A header list as browsers send it in Access-Control-Request-Headers. */
const HEADER_LIST = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$/;

/** The checked --cors list: "*" or origins such as https://app.example.com:8443. */
function checkOrigins(origins: readonly string[], apiKey: boolean): Set<string> | "*" {
  if (origins.length === 0) throw new TypeError("cors must list at least one origin");
  if (origins.includes("*")) {
    if (origins.length > 1) throw new TypeError('cors: "*" stands alone, not beside other origins');
    if (apiKey) throw new TypeError('cors "*" cannot be combined with an API key: list the origins allowed to use the key');
    return "*";
  }
  for (const origin of origins) {
    let url: URL | null = null;
    try {
      url = new URL(origin);
    } catch {
      // reported below
    }
    if (url === null || (url.protocol !== "http:" && url.protocol !== "https:") || url.origin !== origin) {
      throw new TypeError(`cors: ${JSON.stringify(origin)} is not an origin such as https://example.com or http://localhost:3000 (scheme, host and port only, lower case)`);
    }
  }
  return new Set(origins);
}

export class Cors {
  /** null: CORS is off. */
  readonly #allowed: Set<string> | "*" | null;

  /** `origins` undefined: off. Throws TypeError for a malformed list or "*" with an API key. */
  constructor(origins: readonly string[] | undefined, apiKey: boolean) {
    this.#allowed = origins === undefined ? null : checkOrigins(origins, apiKey);
  }

  /** The Access-Control-Allow-Origin value for this request's Origin, or null. */
  #allowOrigin(req: IncomingMessage): string | null {
    const origin = req.headers.origin;
    if (this.#allowed === null || origin === undefined) return null;
    if (this.#allowed === "*") return "*";
    return this.#allowed.has(origin) ? origin : null;
  }

  /** Sets the CORS headers every response to `req` carries (none when off). */
  apply(req: IncomingMessage, res: ServerResponse): void {
    if (this.#allowed === null) return;
    res.setHeader("Vary", "Origin");
    const allow = this.#allowOrigin(req);
    if (allow !== null) res.setHeader("Access-Control-Allow-Origin", allow);
  }

  /** Whether `req` is a preflight this policy answers: OPTIONS with CORS on. */
  isPreflight(req: IncomingMessage): boolean {
    return this.#allowed !== null && req.method === "OPTIONS";
  }

  /** Whether a preflight's origin may make the request; the headers of its 204 when it may. */
  preflightHeaders(req: IncomingMessage): Record<string, string> | null {
    if (this.#allowOrigin(req) === null) return null;
    const asked = req.headers["access-control-request-headers"];
    return {
      "Access-Control-Allow-Methods": ALLOW_METHODS,
      // The origin is trusted: the headers it asks for (the openai package's x-stainless-* among them) are allowed.
      "Access-Control-Allow-Headers": asked !== undefined && HEADER_LIST.test(asked.trim()) ? asked.trim() : DEFAULT_HEADERS,
      "Access-Control-Max-Age": MAX_AGE,
      Vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    };
  }
}
