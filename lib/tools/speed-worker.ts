// The child process of measureSpeed(): says it is ready, takes one job, reports progress and the
// result over IPC, and exits.
import { runSpeedTests, type SpeedWorkerJob, type SpeedWorkerMessage } from "./speed.js";

function send(message: SpeedWorkerMessage): Promise<void> {
  return new Promise((done) => process.send!(message, () => done()));
}

process.once("message", (job: SpeedWorkerJob) => {
  runSpeedTests(job.path, job.options, (progress) => void send({ type: "progress", progress }))
    .then(
      (result) => send({ type: "result", result }),
      (err: unknown) => {
        const code = (err as { code?: unknown }).code;
        return send({ type: "error", message: err instanceof Error ? err.message : String(err), code: typeof code === "string" ? code : undefined });
      },
    )
    .finally(() => process.exit(0));
});
// The parent decides when to stop (Ctrl-C reaches the whole process group); without a parent there
// is no one to report to.
process.on("SIGINT", () => undefined);
process.once("disconnect", () => process.exit(1));
void send({ type: "ready" });
