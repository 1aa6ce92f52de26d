// `llama-napi rpc-server`: ggml's RPC worker from this package.
import { parseArgs } from "node:util";

const HELP = `Usage: llama-napi rpc-server [--host 127.0.0.1] [--port 50052] [--threads N]

Serves model layers to Llama.load({ rpcServers: ["host:port"] }) on other machines, with ggml's
rpc-server (one client at a time). It binds 127.0.0.1 unless told otherwise: the RPC protocol has
no authentication, so bind another address only on a network you trust.

Options:
  -H, --host HOST     address to bind (default 127.0.0.1)
  -p, --port PORT     port (default 50052)
  -t, --threads N     CPU threads for the work it receives (default: cores up to 4, half above)
  -h, --help          this text`;

export async function rpcServerCommand(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        host: { type: "string", short: "H" },
        port: { type: "string", short: "p" },
        threads: { type: "string", short: "t" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`llama-napi rpc-server: ${(err as Error).message}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP + "\n");
    return 0;
  }
  const port = values.port === undefined ? 50052 : Number(values.port);
  const threads = values.threads === undefined ? undefined : Number(values.threads);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    process.stderr.write(`llama-napi rpc-server: --port must be 1..65535, got ${values.port}\n`);
    return 2;
  }
  if (threads !== undefined && (!Number.isInteger(threads) || threads < 1)) {
    process.stderr.write(`llama-napi rpc-server: --threads must be a positive integer, got ${values.threads}\n`);
    return 2;
  }
  const { startRpcServer, isLoopback } = await import("../core/rpc.js");
  const host = values.host ?? "127.0.0.1";
  if (!isLoopback(host)) {
    process.stderr.write(
      `warning: the RPC protocol has no authentication: anyone who can reach ${host}:${port} can run work on this machine\n`,
    );
  }
  const server = startRpcServer({ host, port, nThreads: threads });
  process.stderr.write(`rpc-server listening on ${server.endpoint}\n`);
  try {
    await server.done;
    return 0;
  } catch (err) {
    process.stderr.write(`llama-napi rpc-server: ${(err as Error).message}\n`);
    return 1;
  }
}
