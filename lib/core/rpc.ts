// ggml's RPC backend: run a worker (`startRpcServer`) and notice a worker that goes away.
import { LlamaError } from "../errors.js";
import { native } from "./binding.js";
import { defaultThreads } from "./backend.js";
import { checkOptions, integer, string, withAlias } from "../validate.js";

export interface RpcServerOptions {
  /** Address to bind. Default 127.0.0.1: the protocol has no authentication. */
  host?: string;
  /** Default 50052. */
  port?: number;
  /** CPU threads for the work it receives. Default: defaultThreads(). */
  nThreads?: number;
  /** @deprecated The older name of nThreads (still accepted). */
  threads?: number;
}

export interface RpcServer {
  endpoint: string;
  /** Settles only if the server stops (it cannot bind, for example): then it rejects. */
  done: Promise<void>;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|::1|\[::1\])$/;

/** True when a host name or address is only reachable from this machine. */
export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host);
}

/**
 * Starts ggml's rpc-server in this process: it serves the layers that `Llama.load({ rpcServers })`
 * sends to it, one client at a time, until the process ends.
 */
export function startRpcServer(options: RpcServerOptions = {}): RpcServer {
  const checked = checkOptions<RpcServerOptions>("options", options, {
    host: string,
    port: integer({ min: 1, max: 65535 }),
    nThreads: integer({ min: 1, max: 1024 }),
    threads: integer({ min: 1, max: 1024 }),
  });
  const o = withAlias("options", checked, "nThreads", "threads");
  const host = o.host ?? "127.0.0.1";
  const endpoint = `${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${o.port ?? 50052}`;
  const done = native.startRpcServer(endpoint, o.nThreads ?? defaultThreads()).catch((err: unknown) => {
    throw new LlamaError("RPC_UNAVAILABLE", err instanceof Error ? err.message : String(err));
  });
  return { endpoint, done };
}

/** Checks "host:port" strings. */
export function checkEndpoints(name: string, value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0) throw new TypeError(`${name} must be a non-empty array of "host:port" strings`);
  return value.map((entry, i) => {
    if (typeof entry !== "string") throw new TypeError(`${name}[${i}] must be a "host:port" string`);
    const match = /^(.+):(\d+)$/.exec(entry);
    const port = match ? Number(match[2]) : 0;
    if (!match || port < 1 || port > 65535) throw new RangeError(`${name}[${i}] must look like "host:port", got ${JSON.stringify(entry)}`);
    return entry;
  });
}

/**
 * ggml's RPC client fails on its own thread when a server goes away, where nothing can unwind: the
 * addon parks that thread and counts the failure. An operation on an RPC-backed model races
 * against that count, so that it rejects with RPC_UNAVAILABLE instead of waiting forever.
 */
export function watchRpc<T>(operation: Promise<T>): Promise<T> {
  const baseline = native.rpcFailures().count;
  return new Promise<T>((resolve, reject) => {
    const timer = setInterval(() => {
      const failures = native.rpcFailures();
      if (failures.count > baseline) {
        clearInterval(timer);
        reject(new LlamaError("RPC_UNAVAILABLE", `an rpc-server went away: ${failures.message.trim()}`));
      }
    }, 20);
    timer.unref();
    operation.then(
      (value) => {
        clearInterval(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearInterval(timer);
        reject(err);
      },
    );
  });
}
