// Shared test fixtures. Tests that need the shared test models fail loudly when they are missing.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { connect, createServer, type AddressInfo } from "node:net";
import { join, resolve } from "node:path";

export const repoRoot = resolve(__dirname, "..");

export function modelsDir(): string {
  const dir = process.env.LLAMA_NAPI_MODELS ? resolve(process.env.LLAMA_NAPI_MODELS) : resolve(repoRoot, "..", "shared", "models");
  if (!existsSync(dir)) {
    throw new Error(`test models not found at ${dir}: set LLAMA_NAPI_MODELS or provide ../shared/models`);
  }
  return dir;
}

export function modelPath(name: "stories260K.gguf" | "llama-2-tiny-random.gguf"): string {
  const path = join(modelsDir(), name);
  if (!existsSync(path)) throw new Error(`test model missing: ${path}`);
  return path;
}

/**
 * stories260K's greedy continuation of "Once upon a time", 24 tokens. Many tests spell out a prefix
 * of it (", there was a", ", there was a little girl named Lily"); test/core/generation.test.ts
 * checks that it is what llama-completion prints on this machine and that each of its tokens leads
 * the runner-up by far more than the CPU kernels (AVX2, AVX-512, AMX) move a logit, so no machine
 * can pick another token.
 */
export const ONCE_UPON_A_TIME_GREEDY = ", there was a little girl named Lily. She loved to play outside in the p";

export function llamaCppDir(): string {
  const dir = process.env.LLAMA_CPP_DIR ? resolve(process.env.LLAMA_CPP_DIR) : join(repoRoot, "vendor", "llama.cpp");
  if (!existsSync(join(dir, "models"))) throw new Error(`llama.cpp source not found at ${dir}: run npm run vendor`);
  return dir;
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs node with `args` in the repository, collecting its output. A child still running after
 * `timeout` ms (0: never) is killed, before the test's own timeout, so that the test says so.
 */
export function runNodeChild(args: string[], options: { env?: NodeJS.ProcessEnv; timeout?: number } = {}): Promise<ChildResult> {
  return new Promise((done) => {
    const child = execFile(
      process.execPath,
      args,
      { cwd: repoRoot, env: options.env ?? process.env, timeout: options.timeout ?? 100_000, killSignal: "SIGKILL", maxBuffer: 1 << 24 },
      (_error, stdout, stderr) => done({ code: child.exitCode, signal: child.signalCode, stdout, stderr }),
    );
  });
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

/** Every item of an async iterable. */
export async function drain<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/** The error `call` throws, or its promise (or async iterator's first step) rejects with; undefined if none. */
export async function errorOf(call: () => unknown): Promise<unknown> {
  try {
    const result = call();
    if (result instanceof Promise) await result;
    else if (result !== null && typeof result === "object" && Symbol.asyncIterator in result) {
      await (result as unknown as AsyncIterator<unknown>).next();
    }
  } catch (err) {
    return err;
  }
  return undefined;
}

/** A TCP port on loopback that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  await new Promise((done) => server.close(done));
  return port;
}

/** Resolves once something accepts connections on 127.0.0.1:`port` (an rpc-server starting up). */
export async function listening(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((done) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.destroy();
        done(true);
      });
      socket.on("error", () => done(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}
