import type { TokenDecoder } from "../core/token-decoder.js";

/**
 * Turns generated tokens into text deltas that honour stop strings across token boundaries: text
 * that might be the start of a stop string is held back until it is clear, and a stop string and
 * everything after it never come out.
 */
export class StopTextStream {
  readonly #decoder: TokenDecoder;
  readonly #stops: string[];
  #text = "";
  #emitted = 0;
  #stopped = false;

  constructor(decoder: TokenDecoder, stops: readonly string[]) {
    this.#decoder = decoder;
    this.#stops = stops.filter((s) => s.length > 0);
  }

  /** True once a stop string was found. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Every character decoded so far, released or held back (cut at a stop string). */
  get decoded(): string {
    return this.#text;
  }

  /** Every character released so far. */
  get text(): string {
    return this.#text.slice(0, this.#emitted);
  }

  /** Adds a token; returns the text now safe to release. */
  push(token: number): string {
    if (this.#stopped) return "";
    this.#text += this.#decoder.push(token);
    return this.#release(false);
  }

  /** Ends the stream: releases what was held back (minus a stop string). */
  finish(): string {
    if (this.#stopped) return "";
    this.#text += this.#decoder.flush();
    return this.#release(true);
  }

  #release(final: boolean): string {
    let cut = -1;
    for (const stop of this.#stops) {
      const at = this.#text.indexOf(stop, this.#emitted);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    let end: number;
    if (cut >= 0) {
      this.#stopped = true;
      this.#text = this.#text.slice(0, cut);
      end = cut;
    } else {
      end = final ? this.#text.length : this.#text.length - this.#heldBack();
    }
    const delta = this.#text.slice(this.#emitted, end);
    this.#emitted = end;
    return delta;
  }

  /** Length of the longest tail of the unreleased text that starts some stop string. */
  #heldBack(): number {
    let longest = 0;
    const pending = this.#text.length - this.#emitted;
    for (const stop of this.#stops) {
      for (let n = Math.min(stop.length - 1, pending); n > longest; n--) {
        if (this.#text.endsWith(stop.slice(0, n))) {
          longest = n;
          break;
        }
      }
    }
    return longest;
  }
}
