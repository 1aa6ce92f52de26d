// The CLI run in-process with captured streams (fake terminals included), for the CLI's tests.
import { PassThrough, Readable, Writable } from "node:stream";
import { runCli } from "../../lib/cli/main.js";

export class Capture extends Writable {
  text = "";
  constructor(readonly isTTY: boolean) {
    super();
  }
  columns = 80;
  override _write(chunk: Buffer | string, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

export interface RunOptions {
  stdin?: string | PassThrough;
  tty?: boolean;
  stderrTty?: boolean;
}

export function streams(options: RunOptions) {
  const stdin = options.stdin instanceof PassThrough ? options.stdin : Readable.from(options.stdin === undefined ? [] : [Buffer.from(options.stdin)]);
  return {
    stdin: Object.assign(stdin, { isTTY: options.tty ?? false }),
    stdout: new Capture(options.tty ?? false),
    stderr: new Capture(options.stderrTty ?? options.tty ?? false),
  };
}

export async function run(argv: string[], options: RunOptions = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = streams(options);
  const code = await runCli(argv, io);
  return { code, stdout: io.stdout.text, stderr: io.stderr.text };
}
