// A short run of scripts/chaos.mjs: random overlapping requests (whole, streamed, broken off,
// aborted, dropped half-read, chats, stop strings, logprobs, embeddings, grammars, JSON, until a
// full context, seeded, images whole, streamed, aborted and broken) on one Llama with 1, 2 and 4
// parallel sequences, with the GC running every
// 50 ms; every 250 requests the Llama is disposed with requests in flight and a new one loaded.
import { join } from "node:path";
import { expect, it } from "vitest";
import { imageFile, projectorModel } from "../fixtures.js";
import { modelPath, repoRoot, runNodeChild } from "../helpers.js";

interface ChaosSummary {
  tally: Record<string, { started: number; ok: number; aborted: number; disposed: number }>;
  failures: string[];
}

it("1500 random overlapping requests each get their own answer or the error they asked for, and none hangs", async () => {
  const { code, signal, stdout, stderr } = await runNodeChild(
    [
      join(repoRoot, "scripts", "chaos.mjs"),
      ...["--ops", "1500", "--seed", "7", "--model", modelPath("stories260K.gguf"), "--json"],
      ...["--mmproj", await projectorModel("vision"), "--image", await imageFile(1), "--image", await imageFile(2)],
    ],
    { timeout: 110_000 },
  );
  expect({ signal, stderr: stderr.split("\n").filter((line) => line !== "" && !line.includes("has no chat template; using ChatML")) }).toEqual({ signal: null, stderr: [] });
  const summary = JSON.parse(stdout.trim().split("\n").at(-1)!) as ChaosSummary;
  expect(summary.failures).toEqual([]);
  expect(code).toBe(0);
  // Every kind of request ran, and the aborts landed.
  for (const [kind, counts] of Object.entries(summary.tally)) {
    expect(counts.started, kind).toBeGreaterThan(50);
    expect(counts.ok + counts.aborted + counts.disposed, kind).toBe(counts.started);
  }
  expect(Object.values(summary.tally).reduce((sum, counts) => sum + counts.disposed, 0)).toBeGreaterThan(0);
  for (const kind of ["abortWhole", "abortStream", "badMedia"]) expect(summary.tally[kind]!.aborted, kind).toBeGreaterThan(0);
  expect(summary.tally.badMedia!.ok).toBe(0);
});
