// How a streamed answer goes out as server-sent events: each item as one event, what ends the
// stream, and the event that says why a stream ended early. Completions and chat send `data:`
// lines ending in [DONE]; the Responses API names each event and has no end marker.
import type { ApiError } from "./requests.js";

export interface EventFormat<T> {
  /** One item as an event (`data: ...\n\n`, with `event: ...` where the API names events). */
  event(item: T): string;
  /** Written after the last item; "" for none. */
  end: string;
  /** The event that ends a stream on an error after its headers went out. */
  error(error: ApiError): string;
}

/** Completion and chat chunks, each stamped with the server's model id, ending in `data: [DONE]`. */
export function chunkEvents(model: string): EventFormat<{ model: string }> {
  return {
    event: (chunk) => {
      chunk.model = model;
      return `data: ${JSON.stringify(chunk)}\n\n`;
    },
    end: "data: [DONE]\n\n",
    error: (error) => `data: ${JSON.stringify(error.body)}\n\n`,
  };
}

/** llama-server's own streams (/infill): each object as a `data:` line, and no end marker. */
export const dataEvents: EventFormat<unknown> = {
  event: (item) => `data: ${JSON.stringify(item)}\n\n`,
  end: "",
  error: (error) => `data: ${JSON.stringify(error.body)}\n\n`,
};
