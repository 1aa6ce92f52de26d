// llama.cpp's llama-server as a reference: built from the vendored source in a build folder of its
// own (scripts/build-llama-server.mjs), and asked over HTTP what it renders (POST /apply-template
// takes a chat request and answers the prompt it would run).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { llamaServerPath } from "../scripts/build-llama-server.mjs";
import { freePort, repoRoot, sleep } from "./helpers.js";

/** The llama-server binary; `npm test` builds it first (scripts/build-llama-server.mjs), else it is built here. */
export function llamaServerBinary(): string {
  const bin = llamaServerPath();
  if (!existsSync(bin)) execFileSync(process.execPath, [join(repoRoot, "scripts", "build-llama-server.mjs")], { stdio: ["ignore", "ignore", "inherit"] });
  return bin;
}

export interface LlamaServer {
  url: string;
  /** POST a JSON body; the parsed answer (throws on an HTTP error). */
  post(path: string, body: unknown): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** Starts llama-server on `model` with `args` (e.g. --chat-template-file) and waits until it is ready. */
export async function startLlamaServer(model: string, args: string[] = []): Promise<LlamaServer> {
  const port = await freePort();
  const child: ChildProcess = spawn(llamaServerBinary(), ["-m", model, "--port", String(port), "--host", "127.0.0.1", "-t", "1", "-c", "4096", "--no-warmup", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  child.stderr?.on("data", (data: Buffer) => (log = (log + data.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    child.kill("SIGKILL");
    await exited;
  };
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`llama-server exited: ${log}`);
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {
      // not listening yet
    }
    if (i > 600) {
      await stop();
      throw new Error(`llama-server did not start: ${log}`);
    }
    await sleep(100);
  }
  return {
    url,
    stop,
    async post(path, body) {
      const res = await fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      const json = (await res.json()) as Record<string, unknown>;
      if (!res.ok) throw new Error(`llama-server ${path}: ${res.status} ${JSON.stringify(json)}`);
      return json;
    },
  };
}
