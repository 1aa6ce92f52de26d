/**
 * Scatter charts as SVG markup for the bench reports: labelled points over round-numbered axes, the
 * y axis linear or logarithmic.
 */

/** Escapes text for SVG and HTML, in content and in attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

interface ChartPoint {
  x: number;
  y: number;
  label: string;
}

/** One chart: titles, points, and whether the y axis is logarithmic. */
export interface ChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  points: ChartPoint[];
  logY?: boolean;
}

/** About five round tick values from 0 up to at least `max`. */
function linearTicks(max: number): number[] {
  const rough = (max || 1) / 5;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((f) => f * magnitude).find((s) => s >= rough)!;
  const count = Math.ceil(max / step - 1e-9);
  return Array.from({ length: count + 1 }, (_, i) => Number((i * step).toPrecision(12)));
}

export const CHART_WIDTH = 460;
export const CHART_HEIGHT = 320;
const MARGIN = { left: 64, right: 24, top: 36, bottom: 48 };

/** One scatter chart with labelled points, as an SVG group at (0, 0). */
export function scatterChart(spec: ChartSpec): string {
  const plotWidth = CHART_WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = CHART_HEIGHT - MARGIN.top - MARGIN.bottom;
  const xTicks = linearTicks(Math.max(...spec.points.map((p) => p.x)) * 1.08);
  const xMax = xTicks[xTicks.length - 1]!;
  let yTicks: number[];
  let yScale: (y: number) => number;
  if (spec.logY) {
    const logs = spec.points.map((p) => Math.log10(p.y));
    const low = Math.floor(Math.min(...logs));
    const high = Math.ceil(Math.max(...logs)) + (Math.max(...logs) === Math.ceil(Math.max(...logs)) ? 1 : 0);
    yTicks = Array.from({ length: high - low + 1 }, (_, i) => 10 ** (low + i));
    yScale = (y) => MARGIN.top + plotHeight * (1 - (Math.log10(y) - low) / (high - low || 1));
  } else {
    yTicks = linearTicks(Math.max(...spec.points.map((p) => p.y)) * 1.1);
    const yMax = yTicks[yTicks.length - 1]!;
    yScale = (y) => MARGIN.top + plotHeight * (1 - y / yMax);
  }
  const xScale = (x: number) => MARGIN.left + (plotWidth * x) / xMax;
  const tickLabel = (v: number) => String(Number(v.toPrecision(spec.logY ? 1 : 12)));
  const parts: string[] = [
    `<rect width="${CHART_WIDTH}" height="${CHART_HEIGHT}" fill="#fff"/>`,
    `<text x="${CHART_WIDTH / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(spec.title)}</text>`,
  ];
  for (const t of xTicks) {
    const x = xScale(t);
    parts.push(`<line x1="${x}" y1="${MARGIN.top}" x2="${x}" y2="${MARGIN.top + plotHeight}" stroke="#eee"/>`);
    parts.push(`<text x="${x}" y="${MARGIN.top + plotHeight + 16}" text-anchor="middle" font-size="11">${t}</text>`);
  }
  for (const t of yTicks) {
    const y = yScale(t);
    parts.push(`<line x1="${MARGIN.left}" y1="${y}" x2="${MARGIN.left + plotWidth}" y2="${y}" stroke="#eee"/>`);
    parts.push(`<text x="${MARGIN.left - 6}" y="${y + 4}" text-anchor="end" font-size="11">${tickLabel(t)}</text>`);
  }
  parts.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#888"/>`,
    `<text x="${MARGIN.left + plotWidth / 2}" y="${CHART_HEIGHT - 10}" text-anchor="middle" font-size="12">${escapeXml(spec.xLabel)}</text>`,
    `<text transform="translate(16 ${MARGIN.top + plotHeight / 2}) rotate(-90)" text-anchor="middle" font-size="12">${escapeXml(spec.yLabel)}</text>`,
  );
  // Labels go above their point, or below when that would overlap a label already placed.
  const placed: Array<{ x: number; y: number }> = [];
  for (const p of [...spec.points].sort((a, b) => a.x - b.x)) {
    const x = xScale(p.x);
    const y = yScale(p.y);
    const above = { x, y: y - 9 };
    const clash = placed.some((q) => Math.abs(q.x - above.x) < 44 && Math.abs(q.y - above.y) < 13);
    const label = clash ? { x, y: y + 18 } : above;
    placed.push(label);
    parts.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="4.5" fill="#1f5f9e"/>`);
    parts.push(`<text x="${label.x.toFixed(1)}" y="${label.y.toFixed(1)}" text-anchor="middle" font-size="11">${escapeXml(p.label)}</text>`);
  }
  return parts.join("");
}
