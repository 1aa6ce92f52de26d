import { expectFunction } from "../validate.js";

/**
 * Turns a stream of token ids into text without ever splitting a UTF-8 sequence: bytes of a
 * character spread over several tokens are held back until the character is complete.
 */
export class TokenDecoder {
  readonly #decoder = new TextDecoder("utf-8", { fatal: false });
  readonly #bytesOf: (token: number) => Uint8Array;

  constructor(bytesOf: (token: number) => Uint8Array) {
    this.#bytesOf = expectFunction("bytesOf", bytesOf);
  }

  /** The text completed by this token (possibly "" while a character is incomplete). */
  push(token: number): string {
    return this.#decoder.decode(this.#bytesOf(token), { stream: true });
  }

  /** Whatever is held back, with U+FFFD for an incomplete trailing sequence. */
  flush(): string {
    return this.#decoder.decode();
  }
}
