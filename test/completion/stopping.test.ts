// The stop decision on its own: tokens and their pieces, no model.
import { describe, expect, it } from "vitest";
import { TokenDecoder } from "../../lib/core/token-decoder.js";
import { finishReasonOf, StopCondition, type StopRules } from "../../lib/completion/stopping.js";

// A vocabulary of pieces; token 0 ends generation; "é" is split over tokens 7 and 8.
const PIECES: Uint8Array[] = [
  new Uint8Array(),
  ...["Once", " upon", " a", " time", "<", "/"].map((s) => Buffer.from(s, "utf8")),
  Uint8Array.of(0xc3),
  Uint8Array.of(0xa9),
  Buffer.from("s> more", "utf8"),
];
const EOG = 0;
const [ONCE, UPON, A, TIME, LT, SLASH, E_HEAD, E_TAIL, S_MORE] = [1, 2, 3, 4, 5, 6, 7, 8, 9];

function condition(rules: Partial<StopRules> = {}): StopCondition {
  return new StopCondition({
    decoder: new TokenDecoder((token) => PIECES[token]!),
    isEog: (token) => token === EOG,
    stops: [],
    maxTokens: Infinity,
    room: 100,
    ...rules,
  });
}

/** Feeds tokens until one stops generation; returns the deltas and the reason. */
function run(stop: StopCondition, tokens: number[]) {
  const deltas: string[] = [];
  for (const token of tokens) {
    const { delta, stop: reason } = stop.next(token);
    deltas.push(delta);
    if (reason !== null) return { deltas, reason };
  }
  return { deltas, reason: null };
}

describe("StopCondition", () => {
  it("stops at an end-of-generation token, which is neither text nor a generated token", () => {
    const stop = condition();
    expect(run(stop, [ONCE, UPON, EOG, A])).toEqual({ deltas: ["Once", " upon", ""], reason: "eog" });
    expect(stop.generated).toBe(2);
    expect(stop.finish()).toEqual({ rest: "", reason: "eog" });
    expect(stop.text).toBe("Once upon");
    expect(finishReasonOf("eog")).toBe("stop");
  });

  it("stops at maxTokens with the last token's text, and at a full context", () => {
    const length = condition({ maxTokens: 3 });
    expect(run(length, [ONCE, UPON, A, TIME])).toEqual({ deltas: ["Once", " upon", " a"], reason: "length" });
    expect(length.tokensLeft).toBe(0);
    const full = condition({ room: 2 });
    expect(run(full, [ONCE, UPON, A]).reason).toBe("context-full");
    expect(finishReasonOf("context-full")).toBe("length");
    // A prompt that fills the context still gets the token sampled from its last logits.
    expect(run(condition({ room: 0 }), [ONCE, UPON])).toEqual({ deltas: ["Once"], reason: "context-full" });
  });

  it("finds a stop string split across three tokens, holding back its start and never releasing it", () => {
    const stop = condition({ stops: ["</s>"] });
    const { deltas, reason } = run(stop, [ONCE, LT, SLASH, S_MORE, TIME]);
    expect(reason).toBe("stop-string");
    // "<" and "/" might begin the stop string: held until the third token decides.
    expect(deltas).toEqual(["Once", "", "", ""]);
    expect(stop.text).toBe("Once");
    expect(stop.generated).toBe(4);
    expect(stop.finish().reason).toBe("stop-string");
    expect(finishReasonOf("stop-string")).toBe("stop");
  });

  it("releases held text that turns out not to be a stop string, and never splits a character", () => {
    const stop = condition({ stops: ["</x"] });
    // Half a character adds no text, so "</" stays held until "é" shows it is no stop string.
    expect(run(stop, [LT, SLASH, E_HEAD, E_TAIL, A]).deltas).toEqual(["", "", "", "</é", " a"]);
    expect(stop.finish()).toEqual({ rest: "", reason: null });
    expect(stop.text).toBe("</é a");
  });

  it("stops on abort: before the next token and for the token in flight", () => {
    const controller = new AbortController();
    const stop = condition({ signal: controller.signal });
    expect(stop.next(ONCE)).toEqual({ delta: "Once", stop: null });
    expect(stop.check()).toBeNull();
    controller.abort(new Error("user"));
    expect(stop.check()).toBe("abort");
    expect(stop.next(UPON)).toEqual({ delta: "", stop: "abort" });
    expect(stop.finish().reason).toBe("abort");
    expect(stop.generated).toBe(1);
  });

  it("counts what is left for the scheduler's bound: none once stopped or aborted", () => {
    const controller = new AbortController();
    const stop = condition({ maxTokens: 10, room: 4, signal: controller.signal });
    expect(stop.tokensLeft).toBe(4);
    stop.next(ONCE);
    expect(stop.tokensLeft).toBe(3);
    controller.abort();
    expect(stop.tokensLeft).toBe(0);
    expect(condition({ room: 0 }).tokensLeft).toBe(1);
    const ended = condition();
    ended.next(EOG);
    expect(ended.tokensLeft).toBe(0);
  });
});
