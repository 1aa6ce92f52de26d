// ggml's RPC backend: stories260K split over two loopback rpc-servers (started from this package)
// and the local CPU gives exactly the local greedy output; a server that is down, goes away
// mid-generation or speaks another protocol version gives RPC_UNAVAILABLE, never a hang or crash.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Llama, LlamaError } from "../../lib/index.js";
import { freePort, listening, modelPath, repoRoot } from "../helpers.js";

interface Worker {
  port: number;
  child: ChildProcess;
  output: () => string;
}

async function startWorker(): Promise<Worker> {
  const port = await freePort();
  const script = `require(${JSON.stringify(join(repoRoot, "dist/cjs/cli/rpc.js"))}).rpcServerCommand(["--port", "${port}", "--threads", "1"]).then((code) => process.exit(code))`;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  await listening(port);
  return { port, child, output: () => output };
}

const PROMPT = "Once upon a time";

describe("RPC backend", () => {
  const workers: Worker[] = [];
  let local: string;

  beforeAll(async () => {
    execFileSync(process.execPath, [join(repoRoot, "scripts", "build-ts.mjs")], { stdio: "pipe" });
    const llm = await Llama.load({ modelPath: modelPath("stories260K.gguf"), nCtx: 256, nThreads: 2 });
    local = (await llm.createCompletion(PROMPT, { maxTokens: 48, temperature: 0 })).choices[0]!.text;
    await llm.dispose();
  });
  afterAll(() => {
    for (const w of workers) w.child.kill("SIGKILL");
  });

  it("splits stories260K over two rpc-servers and the CPU with exactly the local greedy output", async () => {
    workers.push(await startWorker(), await startWorker());
    const [a, b] = workers;
    const llm = await Llama.load({
      modelPath: modelPath("stories260K.gguf"),
      nCtx: 256,
      nThreads: 2,
      rpcServers: [`127.0.0.1:${a!.port}`, `127.0.0.1:${b!.port}`],
      // 4 of the 5 layers leave the CPU, half to each server.
      nGpuLayers: 4,
      tensorSplit: [1, 1],
    });
    try {
      const res = await llm.createCompletion(PROMPT, { maxTokens: 48, temperature: 0 });
      expect(res.choices[0]!.text).toBe(local);
      expect(a!.output()).toContain("Accepted client connection");
      expect(b!.output()).toContain("Accepted client connection");
    } finally {
      await llm.dispose();
    }
  });

  it("a server that is down is RPC_UNAVAILABLE at load", async () => {
    const port = await freePort();
    const started = Date.now();
    const error = await Llama.load({ modelPath: modelPath("stories260K.gguf"), rpcServers: [`127.0.0.1:${port}`], nGpuLayers: 5 }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(LlamaError);
    expect((error as LlamaError).code).toBe("RPC_UNAVAILABLE");
    expect((error as LlamaError).message).toContain(`127.0.0.1:${port}`);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("a server of another protocol version is refused with a clear message", async () => {
    // Answers the HELLO command (1-byte command, 8-byte size, 24-byte caps) as version 5.0.0.
    const server = createServer((socket) => {
      let received = 0;
      socket.on("data", (chunk) => {
        received += chunk.length;
        if (received >= 1 + 8 + 24) {
          const reply = Buffer.alloc(8 + 4 + 24);
          reply.writeBigUInt64LE(28n, 0);
          reply[8] = 5;
          socket.end(reply);
        }
      });
    });
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    const { port } = server.address() as AddressInfo;
    try {
      const error = await Llama.load({ modelPath: modelPath("stories260K.gguf"), rpcServers: [`127.0.0.1:${port}`], nGpuLayers: 5 }).then(
        () => null,
        (err: unknown) => err,
      );
      expect((error as LlamaError).code).toBe("RPC_UNAVAILABLE");
      expect((error as LlamaError).message).toMatch(/another RPC protocol .*5\.0\.0.*this build speaks 6\.0/);
    } finally {
      server.close();
    }
  });

  it("a server killed mid-generation gives RPC_UNAVAILABLE, and the process carries on", async () => {
    const a = await startWorker();
    const b = await startWorker();
    workers.push(a, b);
    const llm = await Llama.load({
      modelPath: modelPath("stories260K.gguf"),
      nCtx: 256,
      nThreads: 2,
      rpcServers: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`],
      nGpuLayers: 4,
      tensorSplit: [1, 1],
    });
    let chunks = 0;
    const started = Date.now();
    const error = await (async () => {
      for await (const _chunk of llm.createCompletion(PROMPT, { maxTokens: 200, temperature: 0, stream: true })) {
        if (++chunks === 5) b.child.kill("SIGKILL");
      }
    })().then(
      () => null,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(LlamaError);
    expect((error as LlamaError).code).toBe("RPC_UNAVAILABLE");
    expect(Date.now() - started).toBeLessThan(10_000);
    await expect(llm.createCompletion(PROMPT, { maxTokens: 4 })).rejects.toMatchObject({ code: "RPC_UNAVAILABLE" });
    await llm.dispose();

    // Local work still runs in this process.
    const fresh = await Llama.load({ modelPath: modelPath("stories260K.gguf"), nCtx: 256, nThreads: 2 });
    expect((await fresh.createCompletion(PROMPT, { maxTokens: 48, temperature: 0 })).choices[0]!.text).toBe(local);
    await fresh.dispose();
  });
});
