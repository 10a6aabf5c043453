/**
 * Markup primitives and inline SVG charts for the HTML report. Everything here is pure and
 * deterministic: aggregates in, markup out. Strings from data are escaped by construction:
 * the `html` template escapes every interpolated value that is not already `Html`.
 */

/** A fragment of markup that is safe to insert as is (built by `html` or `raw`). */
export class Html {
  readonly value: string;
  constructor(value: string) {
    this.value = value;
  }
  toString(): string {
    return this.value;
  }
}

/** What `html` accepts between its literal parts; null and undefined render as nothing. */
export type HtmlValue = Html | string | number | null | undefined | false | readonly HtmlValue[];

const ESCAPES: Record<string, string> = {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'};

/** Escapes text for use in element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** Markup the caller vouches for (literal markup, never data). */
export function raw(markup: string): Html {
  return new Html(markup);
}

/** A template tag: literal parts are kept, interpolated values are escaped unless `Html`. */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): Html {
  let out = strings[0]!;
  values.forEach((value, i) => {
    out += render(value) + strings[i + 1]!;
  });
  return new Html(out);
}

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof Html) return value.value;
  if (typeof value === 'number') return escapeHtml(formatNumber(value));
  if (typeof value === 'string') return escapeHtml(value);
  return value.map(render).join('');
}

/**
 * A number for people: 4 significant digits, thousands grouped, exponent form for very large
 * or very small magnitudes. Written by hand rather than with Intl so the output never
 * depends on the machine's locale data.
 */
export function formatNumber(value: number | null | undefined, digits = 4): string {
  if (value === null || value === undefined || Number.isNaN(value)) return 'n/a';
  if (!Number.isFinite(value)) return value > 0 ? '∞' : '-∞';
  if (value === 0) return '0';
  const magnitude = Math.abs(value);
  if (magnitude >= 1e9 || magnitude < 1e-4) {
    const [mantissa, exponent] = value.toExponential(digits - 1).split('e');
    return `${trimZeros(mantissa!)}e${Number(exponent)}`;
  }
  if (Number.isInteger(value)) return formatInteger(value);
  const text = String(Number(value.toPrecision(digits)));
  const [whole, fraction] = text.split('.');
  return fraction === undefined ? formatInteger(Number(whole)) : `${formatInteger(Number(whole), whole!.startsWith('-'))}.${fraction}`;
}

/** An integer with thousands separated by commas: 1,234,567. */
export function formatInteger(value: number, negativeZero = false): string {
  const sign = value < 0 || negativeZero ? '-' : '';
  const digits = String(Math.abs(Math.trunc(value)));
  return sign + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** `one` for 1, else `many` (the plural). */
export function plural(n: number, one: string, many = `${one}s`): string {
  return n === 1 ? one : many;
}

/**
 * A percentage with up to `decimals` decimals (one more significant digit under 1%); never
 * 100% for less than all, nor 0% for more than none.
 */
export function formatPercent(value: number | null | undefined, decimals = 2): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return 'n/a';
  if (value === 0) return '0%';
  const magnitude = Math.abs(value);
  if (magnitude < 1) return `${formatNumber(value, decimals + 1)}%`;
  let text = roundTo(value, decimals);
  for (let more = decimals + 1; Math.abs(Number(text)) === 100 && magnitude !== 100 && more <= 12; more++) text = roundTo(value, more);
  return `${text}%`;
}

function roundTo(value: number, decimals: number): string {
  return String(Number(value.toFixed(decimals)));
}

function trimZeros(text: string): string {
  return text.includes('.') ? text.replace(/\.?0+$/, '') : text;
}

/** The data behind one overlaid histogram: shared bin edges and counts per version. */
export interface HistogramData {
  edges: readonly number[];
  old: readonly number[];
  new: readonly number[];
}

/** Labels of a chart; `id` must be unique in the page (it names the title and description). */
export interface ChartLabels {
  id: string;
  title: string;
  description: string;
  oldLabel: string;
  newLabel: string;
}

const WIDTH = 560;
const HEIGHT = 230;
const MARGIN = {left: 48, right: 14, top: 34, bottom: 38};
/** Old version: light fill with a dark outline; new version: a thick line of another hue. */
export const CHART_COLORS = {old: '#2f6fb0', oldFill: '#bcd5ee', new: '#c2410c', axis: '#4b5563', grid: '#e5e7eb', text: '#1f2937'};

/**
 * The old and new distributions overlaid as shares of each version's non-null values (the
 * versions may differ in size): old as filled bars, new as a step line, so the two differ in
 * shape as well as in color. The SVG carries a <title> and <desc> for assistive technology.
 */
export function histogramChart(data: HistogramData, labels: ChartLabels): Html {
  const bins = Math.min(data.old.length, data.new.length, Math.max(data.edges.length - 1, 0));
  const titleId = `${labels.id}-title`;
  const descId = `${labels.id}-desc`;
  const open = html`<svg class="chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-labelledby="${titleId} ${descId}">`;
  const head = html`<title id="${titleId}">${labels.title}</title><desc id="${descId}">${labels.description}</desc>`;
  const totalOld = sum(data.old.slice(0, bins));
  const totalNew = sum(data.new.slice(0, bins));
  if (bins === 0 || (totalOld === 0 && totalNew === 0)) {
    return html`${open}${head}<text x="${WIDTH / 2}" y="${HEIGHT / 2}" text-anchor="middle" fill="${CHART_COLORS.text}" font-size="14">No non-null values to chart</text></svg>`;
  }
  const share = (counts: readonly number[], total: number) => counts.slice(0, bins).map((c) => (total === 0 ? 0 : c / total));
  const oldShare = share(data.old, totalOld);
  const newShare = share(data.new, totalNew);
  const top = niceCeiling(Math.max(...oldShare, ...newShare));
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (j: number) => MARGIN.left + (j / bins) * plotW;
  const y = (p: number) => MARGIN.top + plotH - (p / top) * plotH;
  const base = MARGIN.top + plotH;

  const grid = [0, 0.5, 1].map((f) => {
    const gy = fixed(y(top * f));
    return html`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${gy}" y2="${gy}" stroke="${CHART_COLORS.grid}"/><text x="${MARGIN.left - 6}" y="${fixed(y(top * f) + 4)}" text-anchor="end">${formatPercent(top * f * 100)}</text>`;
  });
  const bars = oldShare.map((p, j) =>
    p === 0 ? null : raw(`<rect x="${fixed(x(j))}" y="${fixed(y(p))}" width="${fixed(x(j + 1) - x(j))}" height="${fixed(base - y(p))}"/>`),
  );
  let step = `M${fixed(x(0))},${fixed(base)}`;
  newShare.forEach((p, j) => {
    step += ` V${fixed(y(p))} H${fixed(x(j + 1))}`;
  });
  step += ` V${fixed(base)}`;
  // Tick labels rounded to a thousandth of the range, so float noise (-2e-6 for 0) never shows.
  const first = data.edges[0] ?? 0;
  const span = (data.edges[bins] ?? first) - first;
  const quantum = span > 0 ? 10 ** Math.floor(Math.log10(span / 1000)) : 0;
  const tick = (value: number | undefined) => (value === undefined || quantum === 0 ? value : Math.round(value / quantum) * quantum);
  const ticks = [0, Math.round(bins / 2), bins].map((j, i) => {
    const anchor = i === 0 ? 'start' : i === 2 ? 'end' : 'middle';
    return html`<line x1="${fixed(x(j))}" x2="${fixed(x(j))}" y1="${base}" y2="${base + 4}" stroke="${CHART_COLORS.axis}"/><text x="${fixed(x(j))}" y="${base + 17}" text-anchor="${anchor}">${formatNumber(tick(data.edges[j]))}</text>`;
  });
  const legendY = 16;
  const legend = html`<rect x="${MARGIN.left}" y="${legendY - 9}" width="14" height="10" fill="${CHART_COLORS.oldFill}" stroke="${CHART_COLORS.old}"/><text x="${MARGIN.left + 19}" y="${legendY}">${labels.oldLabel}</text><line x1="${MARGIN.left + 190}" x2="${MARGIN.left + 208}" y1="${legendY - 4}" y2="${legendY - 4}" stroke="${CHART_COLORS.new}" stroke-width="3"/><text x="${MARGIN.left + 213}" y="${legendY}">${labels.newLabel}</text>`;

  return html`${open}${head}<g font-size="11" fill="${CHART_COLORS.text}">${grid}${ticks}${legend}</g><g fill="${CHART_COLORS.oldFill}" stroke="${CHART_COLORS.old}" stroke-width="0.75">${bars}</g><path d="${step}" fill="none" stroke="${CHART_COLORS.new}" stroke-width="2.5" stroke-linejoin="round"/><line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${base}" y2="${base}" stroke="${CHART_COLORS.axis}"/><text x="${fixed(MARGIN.left + plotW / 2)}" y="${HEIGHT - 4}" text-anchor="middle" font-size="11" fill="${CHART_COLORS.axis}">value (share of non-null rows per bin)</text></svg>`;
}

// The smallest of 1, 2, 2.5, 5 x 10^k at or above `value`, for a y axis with round labels.
function niceCeiling(value: number): number {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value * (1 - 1e-12)) return step * power;
  return 10 * power;
}

function sum(values: readonly number[]): number {
  let total = 0;
  for (const v of values) total += Number.isFinite(v) ? v : 0;
  return total;
}

// Coordinates with at most one decimal keep the markup small and the bytes stable.
function fixed(value: number): string {
  return String(Math.round(value * 10) / 10);
}
