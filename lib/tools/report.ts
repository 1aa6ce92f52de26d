/**
 * A bench() report as a markdown table, CSV and JSON (llama-bench's field names where it has one),
 * and a self-contained HTML page with SVG charts of size against speed and quality.
 */
import { basename } from "node:path";
import type { BenchModelResult, BenchReport } from "./bench.js";
import type { ThroughputTest } from "./speed.js";
import type { SpeculativeSpeed } from "./speculative.js";
import { expectNumber, expectObject, expectString } from "../validate.js";
import { CHART_HEIGHT, CHART_WIDTH, escapeXml, scatterChart, type ChartSpec } from "./report-chart.js";

const KIB = 1024;
const MIB = KIB * 1024;
const GIB = MIB * 1024;

/** A bench() report, checked where the renderers rely on it, so a wrong one is a TypeError naming the field. */
function expectReport(value: unknown): BenchReport {
  const report = expectObject("report", value);
  expectObject("report.settings", report.settings);
  expectObject("report.system", report.system);
  if (!Array.isArray(report.models)) throw new TypeError("report.models must be an array of bench() results");
  report.models.forEach((model: unknown, i) => {
    const name = `report.models[${i}]`;
    const m = expectObject(name, model);
    expectString(`${name}.path`, m.path);
    expectString(`${name}.type`, m.type);
    for (const field of ["fileSize", "modelSize", "nParams", "bitsPerWeight"]) expectNumber(`${name}.${field}`, m[field]);
    expectObject(`${name}.pp`, m.pp);
    expectObject(`${name}.tg`, m.tg);
  });
  return value as BenchReport;
}

/** llama-bench's size column: MiB or GiB with two decimals. */
export function formatBytes(bytes: number): string {
  return bytes >= GIB ? `${(bytes / GIB).toFixed(2)} GiB` : `${(bytes / MIB).toFixed(2)} MiB`;
}

/** llama-bench's params column: 1.24 B, 0.29 M. */
function formatParams(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} B` : `${(n / 1e6).toFixed(2)} M`;
}

function formatRate(test: ThroughputTest): string {
  return `${test.avg_ts.toFixed(2)} ± ${test.stddev_ts.toFixed(2)}`;
}

/** Significant digits that keep small figures readable (0.000731 rather than 0.00). */
function formatSmall(value: number, digits = 3): string {
  if (value === 0) return "0";
  return Math.abs(value) >= 10 ** digits ? value.toFixed(0) : value.toPrecision(digits);
}

function percent(value: number, decimals = 2): string {
  return `${(100 * value).toFixed(decimals)} %`;
}

interface Column {
  header: string;
  align: "left" | "right";
  cell: (model: BenchModelResult) => string;
}

/** Tokens per second with the draft, the ratio to without it, and the share of drafts accepted. */
function formatSpeculative(s: SpeculativeSpeed): string {
  const sorted = [...s.draftTps].sort((a, b) => a - b);
  const accepted = s.draftTokens === 0 ? "no drafts" : `${((100 * s.draftAccepted) / s.draftTokens).toFixed(0)}% accepted`;
  return `${sorted[sorted.length >> 1]!.toFixed(2)} (${s.ratio.toFixed(2)}x, ${accepted})`;
}

function columns(report: BenchReport): Column[] {
  const { nPrompt, nGen } = report.settings;
  const hasQuality = report.models.some((m) => m.perplexity !== undefined);
  const hasDivergence = report.models.some((m) => m.divergence !== undefined);
  const list: Column[] = [
    { header: "model", align: "left", cell: (m) => basename(m.path) },
    { header: "type", align: "left", cell: (m) => m.type },
    { header: "size", align: "right", cell: (m) => formatBytes(m.fileSize) },
    { header: "BPW", align: "right", cell: (m) => m.bitsPerWeight.toFixed(2) },
    { header: "params", align: "right", cell: (m) => formatParams(m.nParams) },
    { header: `pp${nPrompt} t/s`, align: "right", cell: (m) => formatRate(m.pp) },
    { header: `tg${nGen} t/s`, align: "right", cell: (m) => formatRate(m.tg) },
    { header: "TTFT ms", align: "right", cell: (m) => m.ttft.meanMs.toFixed(1) },
    { header: "peak mem", align: "right", cell: (m) => formatBytes(m.peakMemoryBytes) },
  ];
  if (report.models.some((m) => m.speculative !== undefined)) {
    list.push({ header: `tg${nGen} drafted t/s`, align: "right", cell: (m) => (m.speculative ? formatSpeculative(m.speculative) : "") });
  }
  if (hasQuality) {
    list.push({
      header: "PPL",
      align: "right",
      cell: (m) => (m.perplexity ? `${formatSmall(m.perplexity.perplexity, 5)} ± ${formatSmall(m.perplexity.uncertainty, 3)}` : ""),
    });
  }
  if (hasDivergence) {
    list.push(
      { header: "mean KLD", align: "right", cell: (m) => (m.divergence ? formatSmall(m.divergence.klDivergence.value) : m.isBase ? "base" : "") },
      { header: "KLD p99", align: "right", cell: (m) => (m.divergence ? formatSmall(m.divergence.klDivergence.distribution.p99) : "") },
      { header: "mean Δp", align: "right", cell: (m) => (m.divergence ? percent(m.divergence.deltaP.value, 3) : "") },
      { header: "RMS Δp", align: "right", cell: (m) => (m.divergence ? percent(m.divergence.deltaP.rms.value, 3) : "") },
      { header: "same top", align: "right", cell: (m) => (m.divergence ? percent(m.divergence.sameTop.value) : "") },
    );
  }
  return list;
}

/** The report as a markdown table, in llama-bench's style, with the settings below it. */
export function toMarkdown(report: BenchReport): string {
  expectReport(report);
  const cols = columns(report);
  const rows = report.models.map((m) => cols.map((c) => c.cell(m)));
  const widths = cols.map((c, i) => Math.max(c.header.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    `| ${cells.map((cell, i) => (cols[i]!.align === "right" ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join(" | ")} |`;
  const rule = `| ${widths.map((w, i) => (cols[i]!.align === "right" ? `${"-".repeat(w - 1)}:` : "-".repeat(w))).join(" | ")} |`;
  return [line(cols.map((c) => c.header)), rule, ...rows.map(line), "", settingsLine(report), ""].join("\n");
}

function settingsLine(report: BenchReport): string {
  const s = report.settings;
  const parts = [
    `llama.cpp ${report.system.buildCommit}`,
    report.system.cpuInfo,
    `${s.nThreads ?? s.threads ?? "default"} threads`,
    `${s.repetitions} runs per test (mean ± sd)`,
    `batch ${s.nBatch}/${s.nUbatch}`,
  ];
  if (s.text !== undefined) parts.push(`perplexity of ${basename(s.text)} in chunks of ${s.nCtx} tokens`);
  return parts.join("; ");
}

const CSV_FIELDS = [
  "build_commit",
  "cpu_info",
  "backends",
  "model_filename",
  "model_type",
  "model_size",
  "model_n_params",
  "n_batch",
  "n_ubatch",
  "n_threads",
  "n_prompt",
  "n_gen",
  "test_time",
  "avg_ns",
  "stddev_ns",
  "avg_ts",
  "stddev_ts",
  "quant_type",
  "is_base",
  "file_size",
  "bpw",
  "load_ms",
  "ttft_avg_ms",
  "ttft_stddev_ms",
  "peak_memory_bytes",
  "ppl",
  "ppl_uncertainty",
  "ppl_n_ctx",
  "ppl_n_chunks",
  "ln_ppl_ratio",
  "kld_mean",
  "kld_uncertainty",
  "kld_median",
  "kld_p99",
  "kld_p99_9",
  "kld_max",
  "delta_p_mean",
  "delta_p_rms",
  "same_top_p",
] as const;

type CsvRow = Record<(typeof CSV_FIELDS)[number], string | number | boolean | undefined>;

function csvRows(report: BenchReport): CsvRow[] {
  return report.models.flatMap((m) =>
    [m.pp, m.tg].map((test) => ({
      build_commit: report.system.buildCommit,
      cpu_info: report.system.cpuInfo,
      backends: report.system.backends.join(","),
      model_filename: m.path,
      model_type: m.description,
      model_size: m.modelSize,
      model_n_params: m.nParams,
      n_batch: m.nBatch,
      n_ubatch: m.nUbatch,
      n_threads: m.nThreads ?? m.threads,
      n_prompt: test.n_prompt,
      n_gen: test.n_gen,
      test_time: report.createdAt,
      avg_ns: Math.round(test.avg_ns),
      stddev_ns: Math.round(test.stddev_ns),
      avg_ts: test.avg_ts,
      stddev_ts: test.stddev_ts,
      quant_type: m.type,
      is_base: m.isBase,
      file_size: m.fileSize,
      bpw: m.bitsPerWeight,
      load_ms: m.loadMs,
      ttft_avg_ms: m.ttft.meanMs,
      ttft_stddev_ms: m.ttft.stddevMs,
      peak_memory_bytes: m.peakMemoryBytes,
      ppl: m.perplexity?.perplexity,
      ppl_uncertainty: m.perplexity?.uncertainty,
      ppl_n_ctx: m.perplexity?.nCtx,
      ppl_n_chunks: m.perplexity?.nChunks,
      ln_ppl_ratio: m.divergence?.lnPerplexityRatio.value,
      kld_mean: m.divergence?.klDivergence.value,
      kld_uncertainty: m.divergence?.klDivergence.uncertainty,
      kld_median: m.divergence?.klDivergence.distribution.median,
      kld_p99: m.divergence?.klDivergence.distribution.p99,
      kld_p99_9: m.divergence?.klDivergence.distribution.p99_9,
      kld_max: m.divergence?.klDivergence.distribution.max,
      delta_p_mean: m.divergence?.deltaP.value,
      delta_p_rms: m.divergence?.deltaP.rms.value,
      same_top_p: m.divergence?.sameTop.value,
    })),
  );
}

/** CSV as llama-bench writes it (one row per model and test, every value quoted), quality columns added. */
export function toCsv(report: BenchReport): string {
  expectReport(report);
  const quote = (value: string | number | boolean | undefined) => `"${value === undefined ? "" : String(value).replace(/"/g, '""')}"`;
  const lines = [CSV_FIELDS.join(","), ...csvRows(report).map((row) => CSV_FIELDS.map((f) => quote(row[f])).join(","))];
  return lines.join("\n") + "\n";
}

/** JSON: one object per model, llama-bench's fields for the model and for each test in `tests`. */
export function toJson(report: BenchReport): string {
  expectReport(report);
  const models = report.models.map((m) => ({
    model_filename: m.path,
    model_type: m.description,
    model_size: m.modelSize,
    model_n_params: m.nParams,
    n_batch: m.nBatch,
    n_ubatch: m.nUbatch,
    n_threads: m.nThreads ?? m.threads,
    quant_type: m.type,
    is_base: m.isBase,
    file_size: m.fileSize,
    bpw: m.bitsPerWeight,
    load_ms: m.loadMs,
    tests: [m.pp, m.tg],
    ttft_ms: { n_prompt: m.ttft.nPrompt, avg: m.ttft.meanMs, stddev: m.ttft.stddevMs, samples: m.ttft.samplesMs },
    peak_memory_bytes: m.peakMemoryBytes,
    perplexity: m.perplexity,
    divergence: m.divergence,
  }));
  return (
    JSON.stringify(
      {
        build_commit: report.system.buildCommit,
        cpu_info: report.system.cpuInfo,
        backends: report.system.backends.join(","),
        test_time: report.createdAt,
        settings: report.settings,
        models,
      },
      null,
      2,
    ) + "\n"
  );
}

function chartSpecs(report: BenchReport): ChartSpec[] {
  const unit = Math.max(...report.models.map((m) => m.fileSize)) >= GIB ? { bytes: GIB, name: "GiB" } : { bytes: MIB, name: "MiB" };
  const size = (m: BenchModelResult) => m.fileSize / unit.bytes;
  const xLabel = `file size (${unit.name})`;
  const specs: ChartSpec[] = [
    {
      title: `Generation speed (tg${report.settings.nGen})`,
      xLabel,
      yLabel: "tokens/s",
      points: report.models.map((m) => ({ x: size(m), y: m.tg.avg_ts, label: m.type })),
    },
    {
      title: `Prompt speed (pp${report.settings.nPrompt})`,
      xLabel,
      yLabel: "tokens/s",
      points: report.models.map((m) => ({ x: size(m), y: m.pp.avg_ts, label: m.type })),
    },
  ];
  const compared = report.models.filter((m) => m.divergence !== undefined && m.divergence.klDivergence.value > 0);
  if (compared.length > 0) {
    specs.push({
      title: "Quality: KL divergence from the base",
      xLabel,
      yLabel: "mean KLD (nats, log scale)",
      logY: true,
      points: compared.map((m) => ({ x: size(m), y: m.divergence!.klDivergence.value, label: m.type })),
    });
  } else if (report.models.some((m) => m.perplexity !== undefined)) {
    specs.push({
      title: "Quality: perplexity",
      xLabel,
      yLabel: "perplexity",
      points: report.models.filter((m) => m.perplexity).map((m) => ({ x: size(m), y: m.perplexity!.perplexity, label: m.type })),
    });
  }
  return specs;
}

/** The charts side by side in one standalone SVG document (for a README picture). */
export function toChartSvg(report: BenchReport): string {
  expectReport(report);
  const specs = chartSpecs(report);
  const width = CHART_WIDTH * specs.length;
  const groups = specs.map((spec, i) => `<g transform="translate(${i * CHART_WIDTH} 0)">${scatterChart(spec)}</g>`);
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${CHART_HEIGHT}" viewBox="0 0 ${width} ${CHART_HEIGHT}" ` +
    `font-family="system-ui, -apple-system, Segoe UI, sans-serif">${groups.join("")}</svg>\n`
  );
}

/** A self-contained HTML page: the table, the charts (inline SVG) and the settings. */
export function toHtml(report: BenchReport): string {
  expectReport(report);
  const cols = columns(report);
  const head = cols.map((c) => `<th class="${c.align}">${escapeXml(c.header)}</th>`).join("");
  const body = report.models
    .map((m) => `<tr${m.isBase ? ' class="base"' : ""}>${cols.map((c) => `<td class="${c.align}">${escapeXml(c.cell(m))}</td>`).join("")}</tr>`)
    .join("\n");
  const charts = chartSpecs(report)
    .map((spec) => `<svg xmlns="http://www.w3.org/2000/svg" width="${CHART_WIDTH}" height="${CHART_HEIGHT}" viewBox="0 0 ${CHART_WIDTH} ${CHART_HEIGHT}">${scatterChart(spec)}</svg>`)
    .join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>llama-napi quantization report</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 14px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { background: #f4f6f8; }
.right { text-align: right; font-variant-numeric: tabular-nums; }
.left { text-align: left; }
tr.base td { font-weight: 600; }
.charts svg { margin: 1em 1em 0 0; border: 1px solid #ddd; font-family: inherit; }
.note { color: #555; font-size: 13px; }
</style>
</head>
<body>
<h1>Quantization report</h1>
<p class="note">${escapeXml(settingsLine(report))}. Created ${escapeXml(report.createdAt)}.</p>
<table>
<thead><tr>${head}</tr></thead>
<tbody>
${body}
</tbody>
</table>
<div class="charts">
${charts}
</div>
<p class="note">Speed by llama-bench's method (pp: prompt tokens per second, tg: generated tokens per second, random tokens,
a warmup run, then timed runs from an empty KV cache). TTFT: a pp-sized prompt and the first token sampled.
Peak memory: the measuring process's peak resident set. Perplexity by llama-perplexity's method (second half of each chunk scored);
KLD: KL divergence of each model's next-token distribution from the base's; RMS Δp: root mean square change of the correct
token's probability; same top: how often both models rank the same token first.</p>
</body>
</html>
`;
}

/** The format of a report file, from its extension. */
export function formatFor(path: string): "html" | "md" | "csv" | "json" | "svg" {
  const extension = path.toLowerCase().split(".").pop();
  if (extension === "html" || extension === "htm") return "html";
  if (extension === "md" || extension === "markdown") return "md";
  if (extension === "csv" || extension === "json" || extension === "svg") return extension;
  throw new RangeError(`unknown report format for ${path}: use .html, .md, .csv, .json or .svg`);
}

/** The report in the format its file name asks for. */
export function renderReport(report: BenchReport, path: string): string {
  switch (formatFor(expectString("path", path))) {
    case "html":
      return toHtml(report);
    case "md":
      return toMarkdown(report);
    case "csv":
      return toCsv(report);
    case "json":
      return toJson(report);
    case "svg":
      return toChartSvg(report);
  }
}
