// The server's Prometheus metrics (GET /metrics, with --metrics): llama-server's names, types and
// help texts, on a registry of the server's own. The counts come from the Llama's batching loop
// (Llama.stats), counted from the server's start; the gauges are read at each scrape.
import { Counter, Gauge, Registry } from "prom-client";
import type { Llama } from "../completion/llama.js";
import type { SchedulerStats } from "../completion/scheduler.js";

type Stats = Readonly<SchedulerStats>;

/** Tokens per second, 0 without time. */
function rate(tokens: number, ms: number): number {
  return ms > 0 ? (tokens * 1000) / ms : 0;
}

export interface MetricsSource {
  llama: Llama;
  /** Requests being answered that run on no sequence (embeddings). */
  otherProcessing(): number;
}

export class ServerMetrics {
  readonly registry = new Registry();
  readonly #source: MetricsSource;
  /** The stats when the server started, when the last scrape began, and now (during a scrape). */
  readonly #start: Stats;
  #previous: Stats;
  #now: Stats;
  #rendering: Promise<unknown> = Promise.resolve();

  constructor(source: MetricsSource) {
    this.#source = source;
    this.#start = this.#previous = this.#now = source.llama.stats;
    const since = (key: keyof SchedulerStats) => () => this.#now[key] - this.#start[key];
    this.#counter("prompt_tokens_total", "Number of prompt tokens processed, excluding cached tokens", since("promptTokens"));
    this.#counter("prompt_tokens_cached_total", "Number of prompt tokens reused from the cache", since("promptCachedTokens"));
    this.#counter("prompt_seconds_total", "Total time spent processing prompts", () => since("promptMs")() / 1000);
    this.#counter("tokens_predicted_total", "Number of generation tokens processed", since("predictedTokens"));
    this.#counter("tokens_predicted_seconds_total", "Total time spent generating tokens", () => since("predictedMs")() / 1000);
    this.#counter("n_decode_total", "Total number of llama_decode() calls", since("batches"));
    // As llama-server's, the throughputs are averages over the time between two scrapes.
    const window = (tokens: "promptTokens" | "predictedTokens", ms: "promptMs" | "predictedMs") => () =>
      rate(this.#now[tokens] - this.#previous[tokens], this.#now[ms] - this.#previous[ms]);
    this.#gauge("prompt_tokens_seconds", "Average prompt throughput in tokens/s", window("promptTokens", "promptMs"));
    this.#gauge("predicted_tokens_seconds", "Average generation throughput in tokens/s", window("predictedTokens", "predictedMs"));
    this.#gauge("requests_processing", "Number of requests processing", () => source.llama.active + source.otherProcessing());
    this.#gauge("requests_deferred", "Number of requests deferred", () => source.llama.queued);
    const capacity = source.llama.nCtx * (source.llama.context?.nSeqMax ?? 0);
    this.#gauge("kv_cache_usage_ratio", "KV-cache usage. 1 means 100 percent usage.", () => (capacity > 0 ? this.#now.cachedTokens / capacity : 0));
    this.#gauge("kv_cache_tokens", "KV-cache tokens.", () => this.#now.cachedTokens);
  }

  #counter(name: string, help: string, value: () => number): void {
    new Counter({
      name: `llamacpp:${name}`,
      help,
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(value());
      },
    });
  }

  #gauge(name: string, help: string, value: () => number): void {
    new Gauge({
      name: `llamacpp:${name}`,
      help,
      registers: [this.registry],
      collect() {
        this.set(value());
      },
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text, from one snapshot of the stats; scrapes run one after another. */
  render(): Promise<string> {
    const text = this.#rendering.then(async () => {
      this.#now = this.#source.llama.stats;
      try {
        return await this.registry.metrics();
      } finally {
        this.#previous = this.#now;
      }
    });
    this.#rendering = text.catch(() => undefined);
    return text;
  }
}
