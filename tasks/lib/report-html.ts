/**
 * The HTML report, as a pure function: the two versions, validation.json, analysis.json (or
 * why there is none) and how the upstream tasks fared in, one self-contained page out (inline
 * CSS and SVG, no script, no external reference). Same input, same bytes: nothing here reads
 * the clock, the locale or the environment.
 *
 * Every list that grows with the data (columns aside, which are the schema) is capped, so
 * the page stays small whatever the number of rows; the JSON and CSV files hold the rest.
 */
import type {UpstreamInfo, Verdict} from '../../src/task-api.js';
import type {AnalysisDocument, AnalysisRuleResult, CategoricalAnalysis, DriftLabel, NumericAnalysis} from './analyze-sql.js';
import type {SchemaDiff, ToleranceSettings} from './compare-sql.js';
import type {ComparisonCounts, RuleResult, ValidationColumn} from './rules.js';
import {formatInteger, formatNumber, formatPercent, histogramChart, html, plural, raw} from './charts.js';
import type {Html} from './charts.js';

/** Every field optional, recursively: the report reads files written by other tasks, maybe older ones. */
export type Loose<T> = T extends readonly (infer U)[] ? readonly Loose<U>[] : T extends object ? {[K in keyof T]?: Loose<T[K]>} : T;


/** validation.json as the validate task writes it (DESIGN.md, Output contract). */
export interface ValidationDocument extends Omit<ComparisonCounts, 'columns'> {
  null_keys: {old: number; new: number};
  difference_score: number;
  columns: Record<string, ValidationColumn>;
  schema: SchemaDiff;
  tolerance: ToleranceSettings;
  rules: RuleResult[];
  status: Verdict;
}

/** Everything the report shows. */
export interface ReportInput {
  old: string;
  new: string;
  validation: Loose<ValidationDocument>;
  /** Null when the analysis did not run; `analysisSkipped` then says why. */
  analysis: Loose<AnalysisDocument> | null;
  analysisSkipped?: string;
  /** How each upstream task fared (`ctx.upstream`). */
  upstream: Readonly<Record<string, UpstreamInfo>>;
}

/** Caps on what the page lists; the JSON and CSV outputs hold everything. */
export const REPORT_LIMITS = {movers: 10, categories: 15, categoryNames: 20, segments: 24, rules: 200} as const;

type Parameter = Loose<NumericAnalysis>;
type Rule = (Loose<RuleResult> | Loose<AnalysisRuleResult>) & {source: 'validation' | 'analysis'};

/** Renders the whole page. */
export function renderReport(input: ReportInput): string {
  const v = input.validation;
  const a = input.analysis;
  const rules: Rule[] = [
    ...(v.rules ?? []).map((r) => ({...r, source: 'validation' as const})),
    ...(a?.rules ?? []).map((r) => ({...r, source: 'analysis' as const})),
  ];
  const verdict = overallVerdict(v, a, rules, input.upstream);
  const parameters = sortedParameters(a);
  const sections: {id: string; title: string; body: Html}[] = [
    {id: 'counts', title: 'Key counts', body: countsSection(input, parameters)},
    {id: 'columns', title: 'Columns by number of changes', body: columnsSection(v)},
    {id: 'parameters', title: 'Parameter distributions', body: a ? parametersSection(input, parameters) : skipped(input)},
    {id: 'segments', title: 'Drift by segment', body: a ? segmentsSection(a, parameters) : skipped(input)},
    {id: 'movers', title: 'Largest movers', body: a ? moversSection(parameters) : skipped(input)},
    {id: 'categories', title: 'Categorical changes', body: a ? categoriesSection(a) : skipped(input)},
    {id: 'schema', title: 'Schema changes', body: schemaSection(v)},
    {id: 'rules', title: 'Every rule checked', body: rulesSection(rules)},
    {id: 'run', title: 'How these results were computed', body: runSection(input)},
  ];
  const title = `${verdict.toUpperCase()}: ${input.old} → ${input.new} version comparison`;
  const page = html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>${raw(CSS)}</style>
</head>
<body>
<header class="top">
<p class="eyebrow">Version comparison report</p>
<h1>${input.old} <span aria-label="compared with">→</span> ${input.new}</h1>
${verdictBanner(verdict, rules, input)}
<nav aria-label="Sections"><ul>${sections.map((s) => html`<li><a href="#${s.id}">${s.title}</a></li>`)}</ul></nav>
</header>
<main>
${sections.map((s) => html`<section id="${s.id}" aria-labelledby="${s.id}-h"><h2 id="${s.id}-h">${s.title}</h2>
${s.body}</section>
`)}</main>
<footer><p>Written by the pipeline's <code>report</code> task from <code>validation.json</code>${a ? html` and <code>analysis.json</code>` : ''}. Full lists are in the CSV and JSON files beside this page. The page is self-contained: it loads nothing from the network.</p></footer>
</body>
</html>
`;
  return page.value;
}

// --- Verdict ----------------------------------------------------------------------------

const VERDICT_TEXT: Record<Verdict, {symbol: string; word: string; meaning: string}> = {
  pass: {symbol: '✓', word: 'PASS', meaning: 'Every rule passed.'},
  warn: {symbol: '⚠', word: 'WARN', meaning: 'Only rules of severity warn failed: the new version may be promoted after a look at them.'},
  fail: {symbol: '✗', word: 'FAIL', meaning: 'A rule of severity error failed: the new version should not be promoted as is.'},
};

/** What a verdict means when the rules do not explain it: another task gave it. */
const OTHER_VERDICT_MEANING: Record<'warn' | 'fail', string> = {
  warn: 'Another task this report reads warns (below): the new version may be promoted after a look at it.',
  fail: 'Another task this report reads failed its check (below): the new version should not be promoted as is.',
};

/** The tasks whose results are in validation.json and analysis.json; others' verdicts come from ctx.upstream. */
const DOCUMENT_TASKS = new Set(['validate', 'analyze']);

function overallVerdict(v: Loose<ValidationDocument>, a: Loose<AnalysisDocument> | null, rules: readonly Rule[], upstream: ReportInput['upstream']): Verdict {
  const others = Object.entries(upstream).filter(([name]) => !DOCUMENT_TASKS.has(name)).map(([, info]) => info.verdict ?? undefined);
  return worst([rulesVerdict(rules), v.status, a?.status, ...others]);
}

/** The verdict the failed rules give on their own. */
function rulesVerdict(rules: readonly Rule[]): Verdict {
  return rules.some((r) => r.passed === false && r.severity === 'error') ? 'fail' : rules.some((r) => r.passed === false) ? 'warn' : 'pass';
}

function worst(verdicts: readonly (Verdict | undefined)[]): Verdict {
  if (verdicts.includes('fail')) return 'fail';
  if (verdicts.includes('warn')) return 'warn';
  return 'pass';
}

function verdictBanner(verdict: Verdict, rules: readonly Rule[], input: ReportInput): Html {
  const text = VERDICT_TEXT[verdict];
  const failed = rules.filter((r) => r.passed === false).sort((x, y) => severityRank(x) - severityRank(y));
  const errors = failed.filter((r) => r.severity === 'error').length;
  const summary =
    failed.length === 0
      ? `All ${rules.length} ${plural(rules.length, 'rule')} passed.`
      : `${failed.length} of ${rules.length} ${plural(rules.length, 'rule')} failed (${errors} ${plural(errors, 'error')}, ${failed.length - errors} ${plural(failed.length - errors, 'warning')}).`;
  const deciding =
    failed.length === 0
      ? ''
      : html`<div class="scroll"><table class="deciding">
<caption>The rules that decided the verdict</caption>
<thead><tr><th scope="col">Severity</th><th scope="col">Rule</th><th scope="col">Observed</th><th scope="col">Limit</th><th scope="col">What was found</th></tr></thead>
<tbody>${failed.slice(0, REPORT_LIMITS.rules).map((r) => html`<tr><td>${severityBadge(r.severity)}</td><th scope="row">${ruleName(r)}</th><td class="num">${observedText(r)}</td><td class="num">${limitText(r, r.limit)}</td><td>${r.message ?? ''}</td></tr>`)}</tbody>
</table></div>`;
  const skippedNote = input.analysis === null ? html`<p class="note">${skippedText(input)}</p>` : '';
  // Tasks other than validate and analyze that gave a verdict (a user's gate upstream of the report).
  const others = Object.entries(input.upstream).filter(([name, info]) => !DOCUMENT_TASKS.has(name) && info.verdict !== null);
  const otherFailures = others.filter(([, info]) => info.verdict !== 'pass');
  const otherList = otherFailures.length === 0
    ? ''
    : html`<ul class="other-verdicts">${otherFailures.map(([name, info]) => html`<li>${severityBadge(info.verdict === 'fail' ? 'error' : 'warn')} <code>${name}</code>${info.verdict_reasons.length > 0 ? html`: ${info.verdict_reasons.join('; ')}` : ''}</li>`)}</ul>`;
  const scope = ['validate', ...(input.analysis === null ? [] : ['analyze']), ...others.map(([name]) => name)];
  return html`<section class="verdict verdict-${verdict}" aria-labelledby="verdict-h">
<h2 id="verdict-h" class="verdict-title"><span class="verdict-symbol" aria-hidden="true">${text.symbol}</span> Verdict: <strong>${text.word}</strong></h2>
<p class="verdict-summary">${summary} ${verdict !== 'pass' && rulesVerdict(rules) !== verdict ? OTHER_VERDICT_MEANING[verdict] : text.meaning}</p>
${deciding}${otherList}${skippedNote}
<p class="small muted">The verdict of ${scope.map((name, i) => html`${i === 0 ? '' : i === scope.length - 1 ? ' and ' : ', '}<code>${name}</code>`)}, the tasks this report reads; the run's status, over every task, is in <code>summary.json</code>.</p>
</section>`;
}

function severityRank(rule: Rule): number {
  return rule.severity === 'error' ? 0 : 1;
}

function severityBadge(severity: string | undefined): Html {
  return severity === 'error' ? html`<span class="badge badge-fail">✗ error</span>` : html`<span class="badge badge-warn">⚠ ${severity ?? 'warn'}</span>`;
}

function ruleName(rule: Rule): Html {
  const column = 'column' in rule ? rule.column : undefined;
  return html`${rule.check ?? 'rule'}${column !== undefined ? html` <span class="muted">(${column})</span>` : ''}${rule.source === 'analysis' ? html` <span class="muted">· analysis</span>` : ''}`;
}

function observedText(rule: Rule): string {
  return limitText(rule, rule.observed);
}

/**
 * An observed value or a limit, with its unit, and with digits enough that an observed value
 * that differs from its limit never reads the same (a 5.004% change failing a 5% limit).
 */
function limitText(rule: Rule, value: Loose<RuleResult['observed']> | undefined): string {
  if (value === Infinity) return '∞'; // a largest difference to or from ±Infinity or NaN
  if (value === null || value === undefined) return 'n/a';
  const unit = 'unit' in rule ? rule.unit : undefined;
  const other = value === rule.observed ? rule.limit : rule.observed;
  if (typeof value === 'number') {
    const text = (n: number, extra: number) => (unit === '%' ? formatPercent(n, 2 + extra) : `${formatNumber(n, 4 + extra)}${unit === undefined ? '' : ` ${unit}`}`);
    let extra = 0;
    while (extra < 13 && typeof other === 'number' && other !== value && text(value, extra) === text(other, extra)) extra++;
    return text(value, extra);
  }
  return Object.entries(value)
    .map(([k, n]) => (k === 'pct' || k === 'max_pct' ? formatPercent(n) : k === 'count' || k === 'max' ? `${formatNumber(n)} keys` : `${k} ${formatNumber(n)}`))
    .join(', ');
}

// --- Counts -----------------------------------------------------------------------------

function countsSection(input: ReportInput, parameters: readonly [string, Parameter][]): Html {
  const v = input.validation;
  const rows = v.rows ?? {};
  const keys = v.keys ?? {};
  const schema = v.schema ?? {};
  const schemaChanges = (schema.added?.length ?? 0) + (schema.removed?.length ?? 0) + (schema.retyped?.length ?? 0);
  const rowChange = rows.old !== undefined && rows.new !== undefined && rows.old > 0 ? ((rows.new - rows.old) / rows.old) * 100 : null;
  const compared = v.compared_rows;
  const changed = v.changed_rows;
  const cards: {label: string; value: string; note?: string; wide?: boolean}[] = [
    {label: 'Rows, old → new', value: `${count(rows.old)} → ${count(rows.new)}`, note: rowChange === null ? undefined : `${signed(rowChange)}%`, wide: true},
    {label: 'Matched keys', value: count(keys.matched)},
    {label: 'Added keys', value: count(keys.added), note: 'only in the new version'},
    {label: 'Removed keys', value: count(keys.removed), note: 'only in the old version'},
    {label: 'Duplicated keys', value: `${count(keys.duplicated_old)} / ${count(keys.duplicated_new)}`, note: 'old / new'},
    {label: 'Changed rows', value: count(changed), note: compared === undefined ? undefined : `${formatPercent(compared > 0 ? ((changed ?? 0) / compared) * 100 : 0)} of ${count(compared)} compared`},
    {label: 'Schema changes', value: count(schemaChanges)},
  ];
  if ((v.null_keys?.old ?? 0) + (v.null_keys?.new ?? 0) > 0) {
    cards.push({label: 'Rows with null keys', value: `${count(v.null_keys?.old)} / ${count(v.null_keys?.new)}`, note: 'old / new; not compared'});
  }
  if (input.analysis) {
    const drifted = parameters.filter(([, p]) => p.drift === 'moderate' || p.drift === 'major').length;
    cards.push({label: 'Drifted parameters', value: `${count(drifted)} of ${count(parameters.length)}`, note: 'PSI at or above the warn threshold'});
    const segments = parameters.flatMap(([name, p]) => driftedSegments(p).map((d) => ({name, ...d}))).sort((x, y) => y.psi - x.psi);
    const total = parameters.reduce((n, [, p]) => n + (p.segments?.length ?? 0), 0);
    if (total > 0) {
      const worstOnes = segments.slice(0, 2).map((d) => `${d.name} in ${d.label}`).join('; ');
      cards.push({label: 'Drifted segments', value: `${count(segments.length)} of ${count(total)}`, note: segments.length === 0 ? 'parameter × segment' : `${worstOnes}${segments.length > 2 ? '; …' : ''}`});
    }
  }
  return html`<dl class="cards">${cards.map((c) => html`<div class="card${c.wide ? ' wide' : ''}"><dt>${c.label}</dt><dd><span class="big">${c.value}</span>${c.note ? html`<span class="muted small">${c.note}</span>` : ''}</dd></div>`)}</dl>`;
}

// --- Rules ------------------------------------------------------------------------------

function rulesSection(rules: readonly Rule[]): Html {
  if (rules.length === 0) return html`<p>No rules are configured (<code>validation.rules</code>, <code>analysis.rules</code>).</p>`;
  return html`<div class="scroll"><table>
<caption>Validation rules, then analysis rules, in the order configured</caption>
<thead><tr><th scope="col">Result</th><th scope="col">Rule</th><th scope="col">Severity</th><th scope="col">Observed</th><th scope="col">Limit</th><th scope="col">What was found</th></tr></thead>
<tbody>${rules.slice(0, REPORT_LIMITS.rules).map((r) => html`<tr><td>${r.passed === false ? html`<span class="badge badge-${r.severity === 'error' ? 'fail' : 'warn'}">✗ failed</span>` : html`<span class="badge badge-pass">✓ passed</span>`}</td><th scope="row">${ruleName(r)}</th><td>${r.severity ?? ''}</td><td class="num">${observedText(r)}</td><td class="num">${limitText(r, r.limit)}</td><td>${r.message ?? ''}</td></tr>`)}</tbody>
</table></div>${rules.length > REPORT_LIMITS.rules ? html`<p class="note">${count(rules.length - REPORT_LIMITS.rules)} more rules are in validation.json and analysis.json.</p>` : ''}`;
}

// --- Columns ----------------------------------------------------------------------------

/**
 * A column's largest difference: infinite for a change to or from ±Infinity or NaN; a dash
 * where no two values differed but for nulls.
 */
function maxAbsDiff(c: Loose<ValidationColumn>): Html | string {
  const changed = (c.changed ?? 0) > 0;
  if (c.max_abs_diff === Infinity) return html`∞ <span class="muted small">(a change to or from ±Infinity or NaN, or past the double range)</span>`;
  if (c.max_abs_diff === undefined || c.max_abs_diff === null) return '–';
  if (c.max_abs_diff === 0 && changed) return html`– <span class="muted small">(changes to or from null only)</span>`;
  return formatNumber(c.max_abs_diff);
}

function columnsSection(v: Loose<ValidationDocument>): Html {
  const columns = Object.entries(v.columns ?? {}).filter((e): e is [string, Loose<ValidationColumn>] => e[1] !== undefined);
  if (columns.length === 0) return html`<p>No column was compared in both versions.</p>`;
  columns.sort(([an, ac], [bn, bc]) => (bc.changed ?? 0) - (ac.changed ?? 0) || compareText(an, bn));
  const compared = v.compared_rows ?? 0;
  const most = Math.max(...columns.map(([, c]) => c.changed ?? 0), 1);
  const unchanged = columns.filter(([, c]) => (c.changed ?? 0) === 0).length;
  return html`<p>${count(columns.length - unchanged)} of ${count(columns.length)} compared columns changed in at least one of the ${count(compared)} rows compared (matched keys that are unique in both versions).</p>
<div class="scroll"><table class="columns">
<caption>Compared columns, most changed first</caption>
<thead><tr><th scope="col">Column</th><th scope="col">Type</th><th scope="col">Changed rows</th><th scope="col">Share of compared</th><th scope="col">Nulls old</th><th scope="col">Nulls new</th><th scope="col">Max abs diff</th><th scope="col">Tolerance</th></tr></thead>
<tbody>${columns.map(([name, c]) => {
    const changed = c.changed ?? 0;
    const share = compared > 0 ? (changed / compared) * 100 : 0;
    const type = c.type_old !== undefined && c.type !== undefined && c.type_old !== c.type ? `${c.type_old} → ${c.type}` : (c.type ?? '');
    const tolerance = c.tolerance ? `abs ${formatNumber(c.tolerance.abs)}, rel ${formatNumber(c.tolerance.rel)}` : c.kind === 'numeric' ? '' : 'exact';
    return html`<tr><th scope="row"><code>${name}</code></th><td>${type}</td><td class="num">${count(changed)}</td><td><span class="bar" aria-hidden="true"><span style="width:${fixed1((changed / most) * 100)}%"></span></span> ${formatPercent(share)}</td><td class="num">${count(c.nulls_old)}</td><td class="num">${count(c.nulls_new)}</td><td class="num">${maxAbsDiff(c)}</td><td>${tolerance}</td></tr>`;
  })}</tbody>
</table></div>`;
}

// --- Parameters -------------------------------------------------------------------------

function sortedParameters(a: Loose<AnalysisDocument> | null): [string, Parameter][] {
  const entries = Object.entries(a?.parameters ?? {}).filter((e): e is [string, Parameter] => e[1] !== undefined);
  // The most drifted first: a reviewer reads the top of the page.
  return entries.sort(([an, ap], [bn, bp]) => (bp.psi ?? -1) - (ap.psi ?? -1) || compareText(an, bn));
}

const DRIFT_TEXT: Record<DriftLabel, {symbol: string; class: string}> = {
  none: {symbol: '○', class: 'pass'},
  moderate: {symbol: '▲', class: 'warn'},
  major: {symbol: '▲▲', class: 'fail'},
};

function driftBadge(label: DriftLabel | null | undefined): Html {
  if (label === null || label === undefined) return html`<span class="badge">n/a</span>`;
  const d = DRIFT_TEXT[label];
  return html`<span class="badge badge-${d.class}"><span aria-hidden="true">${d.symbol}</span> ${label}</span>`;
}

function parametersSection(input: ReportInput, parameters: readonly [string, Parameter][]): Html {
  if (parameters.length === 0) return html`<p>No numeric parameter is present in both versions.</p>`;
  const psi = input.analysis?.settings?.psi;
  const thresholds = psi ? html` Drift is <em>moderate</em> from PSI ${formatNumber(psi.warn)} and <em>major</em> from ${formatNumber(psi.fail)}.` : '';
  const table = html`<div class="scroll"><table>
<caption>Numeric parameters, most drifted first</caption>
<thead><tr><th scope="col">Parameter</th><th scope="col">Drift</th><th scope="col">PSI</th><th scope="col">KS</th><th scope="col">Wasserstein (in old σ)</th><th scope="col">Mean old</th><th scope="col">Mean new</th><th scope="col">Mean change</th><th scope="col">Nulls (with NaN, ±∞) old → new</th><th scope="col">Drifted segments</th></tr></thead>
<tbody>${parameters.map(([name, p], i) => html`<tr><th scope="row"><a href="#param-${i}"><code>${name}</code></a></th><td>${driftBadge(p.drift)}</td><td class="num">${formatNumber(p.psi)}</td><td class="num">${formatNumber(p.ks)}</td><td class="num">${formatNumber(p.wasserstein_norm)}</td><td class="num">${formatNumber(p.old?.mean)}</td><td class="num">${formatNumber(p.new?.mean)}</td><td class="num">${meanChange(p.mean_change)}</td><td class="num">${count(p.old?.nulls)} → ${count(p.new?.nulls)}</td><td>${segmentList(p)}</td></tr>`)}</tbody>
</table></div>`;
  const charts = parameters.map(([name, p], i) => parameterFigure(input, name, p, i));
  return html`<p>Each chart overlays the share of rows per bin in the old version (filled bars) and the new one (line), on bins shared by both.${thresholds} KS is the largest gap between the two cumulative distributions (0 to 1); Wasserstein is how far values moved on average, here in units of the old standard deviation.</p>
${table}
<div class="charts">${charts}</div>`;
}

function parameterFigure(input: ReportInput, name: string, p: Parameter, index: number): Html {
  const h = p.histogram;
  const edges = h?.edges ?? [];
  // Pushed down, KS and Wasserstein come from binned counts: their error bounds are shown.
  const ksError = typeof p.ks_error === 'number' && p.ks_error > 0 ? ` (exact value up to ${formatNumber(p.ks_error)} higher)` : '';
  const wError = typeof p.wasserstein_norm_error === 'number' ? ` ± ${formatNumber(p.wasserstein_norm_error)}` : '';
  const figures = `KS ${formatNumber(p.ks)}${ksError}, PSI ${formatNumber(p.psi)}, Wasserstein ${formatNumber(p.wasserstein)} (${formatNumber(p.wasserstein_norm)}${wError} old σ), drift ${p.drift ?? 'n/a'}`;
  const description =
    `Histogram of ${name} in ${Math.max(edges.length - 1, 0)} equal-width bins from ${formatNumber(edges[0])} to ${formatNumber(edges[edges.length - 1])}, ` +
    `as the share of non-null rows per bin. Old version ${input.old} (${count(p.old?.count)} values, mean ${formatNumber(p.old?.mean)}, median ${formatNumber(p.old?.p50)}) as filled bars; ` +
    `new version ${input.new} (${count(p.new?.count)} values, mean ${formatNumber(p.new?.mean)}, median ${formatNumber(p.new?.p50)}) as a line. ${figures}.`;
  const chart = histogramChart(
    {edges, old: h?.old ?? [], new: h?.new ?? []},
    {id: `chart-${index}`, title: `Distribution of ${name}: ${input.old} versus ${input.new}`, description, oldLabel: `old ${input.old}`, newLabel: `new ${input.new}`},
  );
  const stats = [['Mean', 'mean'], ['Std', 'std'], ['Min', 'min'], ['P5', 'p05'], ['Median', 'p50'], ['P95', 'p95'], ['Max', 'max']] as const;
  const row = (label: string, summary: Parameter['old']) =>
    html`<tr><th scope="row">${label}</th>${stats.map(([, key]) => html`<td class="num">${formatNumber(summary?.[key])}</td>`)}<td class="num">${count(summary?.nulls)}</td></tr>`;
  return html`<article class="param" id="param-${index}" aria-labelledby="param-${index}-h">
<h3 id="param-${index}-h"><code>${name}</code> ${driftBadge(p.drift)}</h3>
<figure>${chart}<figcaption>${figures}; mean ${meanChange(p.mean_change)}.</figcaption></figure>
<div class="scroll"><table class="stats"><caption class="sr-only">Summary statistics of ${name}</caption><thead><tr><th scope="col">Version</th>${stats.map(([label]) => html`<th scope="col">${label}</th>`)}<th scope="col">Nulls (with NaN, ±∞)</th></tr></thead>
<tbody>${row('Old', p.old)}${row('New', p.new)}</tbody></table></div>
</article>`;
}

function segmentList(p: Parameter): Html | string {
  const drifted = driftedSegments(p);
  if (drifted.length === 0) return (p.segments?.length ?? 0) > 0 ? 'none' : '–';
  const shown = drifted.slice(0, 3);
  return html`${shown.map((d, i) => html`${i > 0 ? ', ' : ''}${d.label} <span class="badge badge-${DRIFT_TEXT[d.drift].class}"><span aria-hidden="true">${DRIFT_TEXT[d.drift].symbol}</span> PSI ${formatNumber(d.psi, 2)}</span>`)}${drifted.length > shown.length ? ` and ${count(drifted.length - shown.length)} more` : ''}`;
}

function meanChange(change: Loose<NumericAnalysis['mean_change']> | undefined): string {
  if (change?.abs === undefined || change.abs === null) return 'n/a';
  const pct = change.pct === undefined || change.pct === null ? '' : ` (${signed(change.pct)}%)`;
  return `${change.abs > 0 ? '+' : ''}${formatNumber(change.abs)}${pct}`;
}

// --- Segments ---------------------------------------------------------------------------

function segmentsSection(a: Loose<AnalysisDocument>, parameters: readonly [string, Parameter][]): Html {
  const segmentBy = a.settings?.segment_by ?? [];
  if (segmentBy.length === 0) return html`<p>No segments: <code>analysis.segment_by</code> is empty.</p>`;
  // Columns, capped: the segments with the strongest drift label in any parameter first (a
  // drift confined to a few of many segments must show), then those with the most rows.
  // Keyed by the segment's values, not its label: a NULL and the text 'null' are two segments.
  const sizes = new Map<string, {key: string; label: string; rows: number; drift: number}>();
  for (const [, p] of parameters) {
    for (const s of p.segments ?? []) {
      const key = segmentKey(s.segment);
      const entry = sizes.get(key) ?? {key, label: segmentLabel(s.segment), rows: 0, drift: 0};
      entry.rows = Math.max(entry.rows, (s.old?.count ?? 0) + (s.new?.count ?? 0));
      entry.drift = Math.max(entry.drift, s.drift === 'major' ? 2 : s.drift === 'moderate' ? 1 : 0);
      sizes.set(key, entry);
    }
  }
  if (sizes.size === 0) return html`<p>No segment figures in analysis.json.</p>`;
  const shown = [...sizes.values()].sort((x, y) => y.drift - x.drift || y.rows - x.rows || compareText(x.label, y.label)).slice(0, REPORT_LIMITS.segments);
  shown.sort((x, y) => compareText(x.label, y.label));
  const psi = a.settings?.psi;
  const legend = psi
    ? html`<ul class="legend" aria-label="Legend"><li><span class="swatch drift-none"></span>○ none: PSI below ${formatNumber(psi.warn)}</li><li><span class="swatch drift-moderate"></span>▲ moderate: ${formatNumber(psi.warn)} to ${formatNumber(psi.fail)}</li><li><span class="swatch drift-major"></span>▲▲ major: ${formatNumber(psi.fail)} or more</li></ul>`
    : '';
  const cell = (p: Parameter, key: string): Html => {
    const s = (p.segments ?? []).find((x) => segmentKey(x.segment) === key);
    if (!s) return html`<td class="num">–</td>`;
    const d = s.drift ? DRIFT_TEXT[s.drift] : null;
    const title = `mean ${formatNumber(s.old?.mean)} → ${formatNumber(s.new?.mean)}, KS ${formatNumber(s.ks)}, rows ${count(s.old?.count)} → ${count(s.new?.count)}`;
    return html`<td class="num heat drift-${s.drift ?? 'unknown'}" title="${title}, PSI ${formatNumber(s.psi)}">${heatValue(s.psi)}${d && s.drift !== 'none' ? html` <span class="sym">${d.symbol}</span>` : ''}</td>`;
  };
  return html`<p>Population stability index (PSI) of each parameter within each segment of ${segmentBy.map((c, i) => html`${i > 0 ? ', ' : ''}<code>${c}</code>`)}; the symbol repeats the drift label, so the table reads without color. Hover a cell for its means and row counts.</p>
${legend}
<div class="scroll"><table class="heatmap">
<caption>PSI per parameter and segment</caption>
<thead><tr><th scope="col">Parameter</th>${shown.map((s) => html`<th scope="col">${s.label}</th>`)}</tr></thead>
<tbody>${parameters.map(([name, p]) => html`<tr><th scope="row"><code>${name}</code></th>${shown.map((s) => cell(p, s.key))}</tr>`)}</tbody>
</table></div>${sizes.size > shown.length ? html`<p class="note">${count(shown.length)} of ${count(sizes.size)} segments are shown: those that drifted (major first), then the largest; analysis.json has them all.</p>` : ''}`;
}

function heatValue(psi: number | null | undefined): string {
  if (psi === null || psi === undefined) return 'n/a';
  return psi < 0.001 ? '<0.001' : formatNumber(psi, 2);
}

/** The segments of a parameter with drift (moderate or major), worst first. */
function driftedSegments(p: Parameter): {label: string; psi: number; drift: DriftLabel}[] {
  return (p.segments ?? [])
    .filter((s) => s.drift === 'moderate' || s.drift === 'major')
    .map((s) => ({label: segmentLabel(s.segment), psi: s.psi ?? 0, drift: s.drift as DriftLabel}))
    .sort((x, y) => y.psi - x.psi || compareText(x.label, y.label));
}

type Segment = Loose<Record<string, string | number | boolean | null>> | undefined;

/** A segment for people: its value, or column=value pairs; a NULL reads (null), an empty text (empty). */
function segmentLabel(segment: Segment): string {
  const text = (value: unknown) => (value === null || value === undefined ? '(null)' : value === '' ? '(empty)' : valueText(value));
  const entries = Object.entries(segment ?? {});
  if (entries.length === 1) return text(entries[0]![1]);
  return entries.map(([k, value]) => `${k}=${text(value)}`).join(', ');
}

/** A segment's identity: its values as JSON (labels of distinct segments may read alike). */
function segmentKey(segment: Segment): string {
  return JSON.stringify(Object.entries(segment ?? {}));
}

// --- Movers -----------------------------------------------------------------------------

function moversSection(parameters: readonly [string, Parameter][]): Html {
  // The analysis lists only keys whose value changed.
  const withMovers = parameters.map(([name, p]) => [name, p.top_movers ?? []] as const).filter(([, movers]) => movers.length > 0);
  if (withMovers.length === 0) return html`<p>No matched key changed the value of a numeric parameter.</p>`;
  return html`<p>The matched keys whose value moved most, per parameter (the ${REPORT_LIMITS.movers} largest absolute changes; analysis.json keeps up to <code>analysis.top_n</code>).</p>
<div class="movers">${withMovers.map(([name, movers]) => {
    const keyColumns = Object.keys(movers[0]?.key ?? {});
    return html`<div class="scroll"><table class="compact">
<caption><code>${name}</code></caption>
<thead><tr>${keyColumns.map((k) => html`<th scope="col">${k}</th>`)}<th scope="col">Old</th><th scope="col">New</th><th scope="col">Change</th></tr></thead>
<tbody>${movers.slice(0, REPORT_LIMITS.movers).map((m) => html`<tr>${keyColumns.map((k, i) => (i === 0 ? html`<th scope="row">${valueText(m.key?.[k])}</th>` : html`<td>${valueText(m.key?.[k])}</td>`))}<td class="num">${formatNumber(m.old)}</td><td class="num">${formatNumber(m.new)}</td><td class="num">${(m.change ?? 0) > 0 ? '+' : ''}${formatNumber(m.change)}</td></tr>`)}</tbody>
</table></div>`;
  })}</div>`;
}

// --- Categories -------------------------------------------------------------------------

function categoriesSection(a: Loose<AnalysisDocument>): Html {
  const columns = Object.entries(a.categorical ?? {}).filter((e): e is [string, Loose<CategoricalAnalysis>] => e[1] !== undefined);
  if (columns.length === 0) return html`<p>No text or boolean column is present in both versions.</p>`;
  columns.sort(([an, ac], [bn, bc]) => (bc.js_distance ?? -1) - (ac.js_distance ?? -1) || compareText(an, bn));
  return html`<p>Category frequencies of text and boolean columns, the most changed first. The Jensen-Shannon distance runs from 0 (same frequencies) to 1 (no category in common).</p>
${columns.map(([name, c], index) => {
    const categories = (c.categories ?? []).slice(0, REPORT_LIMITS.categories);
    const names = (list: readonly (string | undefined)[] | undefined, what: string) => {
      const values = (list ?? []).filter((x): x is string => x !== undefined);
      if (values.length === 0) return html`<li>No ${what} categories.</li>`;
      const shown = values.slice(0, REPORT_LIMITS.categoryNames);
      const more = values.length - shown.length;
      return html`<li>${count(values.length)}${c.truncated ? '+' : ''} ${what}: ${shown.map((x, i) => html`${i > 0 ? ', ' : ''}<q>${x}</q>`)}${more > 0 ? ` and ${count(more)} more` : ''}</li>`;
    };
    return html`<article class="category" aria-labelledby="cat-${index}-h">
<h3 id="cat-${index}-h"><code>${name}</code> <span class="muted small">JS distance ${formatNumber(c.js_distance)}</span></h3>
<ul class="facts"><li>Distinct values: ${count(c.old?.distinct)} → ${count(c.new?.distinct)}; nulls ${count(c.old?.nulls)} → ${count(c.new?.nulls)}</li>${names(c.new_categories, 'new')}${names(c.vanished_categories, 'vanished')}</ul>
${categories.length === 0 ? '' : html`<div class="scroll"><table class="compact">
<caption class="sr-only">Most frequent categories of ${name}</caption>
<thead><tr><th scope="col">Value</th><th scope="col">Old rows</th><th scope="col">Old share</th><th scope="col">New rows</th><th scope="col">New share</th><th scope="col">Change</th></tr></thead>
<tbody>${categories.map((k) => html`<tr><th scope="row">${k.value ?? ''}</th><td class="num">${count(k.old)}</td><td class="num">${formatPercent(k.old_pct)}</td><td class="num">${count(k.new)}</td><td class="num">${formatPercent(k.new_pct)}</td><td class="num">${signed((k.new_pct ?? 0) - (k.old_pct ?? 0))} pp</td></tr>`)}</tbody>
</table></div>`}${(c.categories?.length ?? 0) > categories.length ? html`<p class="note">The ${count(categories.length)} most frequent of ${count(c.categories?.length ?? 0)}${c.truncated ? '+' : ''} categories are shown.</p>` : ''}
</article>`;
  })}`;
}

// --- Schema -----------------------------------------------------------------------------

function schemaSection(v: Loose<ValidationDocument>): Html {
  const s = v.schema ?? {};
  const rows = [
    ...(s.added ?? []).map((c) => ({change: '+ added', column: c.column, type: c.type ?? ''})),
    ...(s.removed ?? []).map((c) => ({change: '− removed', column: c.column, type: c.type ?? ''})),
    ...(s.retyped ?? []).map((c) => ({change: '~ retyped', column: c.column, type: `${c.old ?? '?'} → ${c.new ?? '?'}`})),
  ];
  if (rows.length === 0) return html`<p>No schema changes: both versions have the same columns with the same types.</p>`;
  return html`<div class="scroll"><table class="compact">
<caption>Columns added, removed or retyped by the new version</caption>
<thead><tr><th scope="col">Change</th><th scope="col">Column</th><th scope="col">Type</th></tr></thead>
<tbody>${rows.map((r) => html`<tr><td>${r.change}</td><th scope="row"><code>${r.column ?? ''}</code></th><td>${r.type}</td></tr>`)}</tbody>
</table></div>`;
}

// --- Run --------------------------------------------------------------------------------

const STATUS_TEXT: Record<UpstreamInfo['status'], string> = {ran: '● ran', cached: '◆ cached', skipped: '○ skipped'};

function runSection(input: ReportInput): Html {
  const tasks = Object.entries(input.upstream).sort(
    ([an, a], [bn, b]) => compareText(a.computed_at ?? '~', b.computed_at ?? '~') || compareText(an, bn),
  );
  const cached = tasks.filter(([, t]) => t.status === 'cached');
  const ran = tasks.filter(([, t]) => t.status === 'ran').length;
  const skippedCount = tasks.length - ran - cached.length;
  const saved = cached.reduce((total, [, t]) => total + t.duration_ms, 0);
  const parts = [
    `${count(ran)} of ${count(tasks.length)} upstream ${plural(tasks.length, 'task')} ran`,
    `${count(cached.length)} ${plural(cached.length, 'was', 'were')} served from the cache${cached.length > 0 ? ` (saving about ${duration(saved)} of computing)` : ''}`,
    ...(skippedCount > 0 ? [`${count(skippedCount)} ${plural(skippedCount, 'was', 'were')} skipped`] : []),
  ];
  const cacheNote =
    tasks.length === 0
      ? html`<p>No upstream task information was given to the report.</p>`
      : html`<p>${parts.slice(0, -1).join(', ')}${parts.length > 1 ? ' and ' : ''}${parts[parts.length - 1]}. A cached result is exactly what the task produced when it last ran, at the time shown.</p>`;
  const v = input.validation;
  const a = input.analysis;
  const settings: [string, string][] = [];
  const engine = (v as {engine?: string}).engine;
  const samples = Object.entries((v as {samples?: Record<string, {rows?: number; total?: number; truncated?: boolean}>}).samples ?? {}).filter(([, sample]) => sample.truncated);
  settings.push([
    'Comparison computed by',
    engine === 'bigquery'
      ? `BigQuery, inside the warehouse${samples.length > 0 ? `; lists capped: ${samples.map(([file, sample]) => `${file} ${count(sample.rows)} of ${count(sample.total)}`).join(', ')}` : ''}`
      : 'DuckDB, on the extracted rows',
  ]);
  if (a !== null) {
    settings.push([
      'Analysis computed by',
      a.engine === 'bigquery' ? `BigQuery, inside the warehouse: ${a.bigquery?.approximate ?? 'approximate quantiles, KS and Wasserstein'}` : 'DuckDB, on the extracted rows (exact quantiles, KS and Wasserstein)',
    ]);
  }
  if (v.tolerance) {
    const columns = Object.entries(v.tolerance.columns ?? {}).map(([k, t]) => `${k}: ${t?.abs !== undefined ? `abs ${formatNumber(t.abs)}` : ''}${t?.abs !== undefined && t?.rel !== undefined ? ', ' : ''}${t?.rel !== undefined ? `rel ${formatNumber(t.rel)}` : ''}`);
    settings.push(['Tolerance', `abs ${formatNumber(v.tolerance.abs)}, rel ${formatNumber(v.tolerance.rel)}${columns.length > 0 ? `; ${columns.join('; ')}` : ''}`]);
  }
  if (a?.settings) {
    const s = a.settings;
    settings.push(['Segments', (s.segment_by ?? []).join(', ') || 'none']);
    settings.push(['PSI bins / thresholds', `${count(s.bins)} bins; warn ${formatNumber(s.psi?.warn)}, fail ${formatNumber(s.psi?.fail)}`]);
    settings.push(['Movers kept', count(s.top_n)]);
  }
  return html`${cacheNote}${tasks.length === 0 ? '' : html`<div class="scroll"><table>
<caption>Upstream tasks of this report</caption>
<thead><tr><th scope="col">Task</th><th scope="col">Outcome</th><th scope="col">Duration</th><th scope="col">Why</th><th scope="col">Computed at (UTC)</th><th scope="col">Rows</th><th scope="col">Verdict</th></tr></thead>
<tbody>${tasks.map(([name, t]) => html`<tr><th scope="row"><code>${name}</code></th><td>${STATUS_TEXT[t.status] ?? t.status}</td><td class="num">${t.status === 'skipped' ? '–' : duration(t.duration_ms)}</td><td>${t.reason ?? (t.status === 'cached' ? 'inputs, settings and code unchanged' : '')}</td><td>${t.computed_at ? t.computed_at.replace('T', ' ').replace(/\.\d+Z$|Z$/, '') : '–'}</td><td class="num">${t.rows === null ? '–' : count(t.rows)}</td><td>${t.verdict ? verdictWord(t.verdict) : '–'}</td></tr>`)}</tbody>
</table></div>`}${settings.length === 0 ? '' : html`<h3>Settings behind the figures</h3><dl class="settings">${settings.map(([k, value]) => html`<dt>${k}</dt><dd>${value}</dd>`)}</dl>`}`;
}

function verdictWord(verdict: Verdict): string {
  return `${VERDICT_TEXT[verdict].symbol} ${verdict}`;
}

// --- Skipped analysis -------------------------------------------------------------------

function skippedText(input: ReportInput): string {
  const reason = input.analysisSkipped;
  const why = reason === undefined || reason === 'skipped on request' ? '--skip-analysis' : reason;
  return `Analysis was skipped (${why}): no distributions, drift figures, segments or movers in this report.`;
}

function skipped(input: ReportInput): Html {
  return html`<p class="note">${skippedText(input)}</p>`;
}

// --- Formatting helpers -----------------------------------------------------------------

function count(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return 'n/a';
  return formatInteger(value);
}

function signed(value: number): string {
  const text = String(Math.round(value * 100) / 100);
  return value > 0 ? `+${text}` : text === '-0' ? '0' : text;
}

function duration(ms: number): string {
  if (!Number.isFinite(ms)) return 'n/a';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${String(Math.round(ms / 100) / 10)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms - minutes * 60_000) / 1000)} s`;
}

function valueText(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'number' || typeof value === 'string') return String(value);
  return JSON.stringify(value) ?? String(value);
}

function fixed1(value: number): string {
  return String(Math.round(value * 10) / 10);
}

// Code-unit order, not localeCompare: the same on every machine.
function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const CSS = `
:root{--text:#1f2937;--muted:#4b5563;--line:#d1d5db;--soft:#f3f4f6;--accent:#1d4ed8;
--pass:#166534;--pass-bg:#dcfce7;--warn:#854d0e;--warn-bg:#fef3c7;--fail:#991b1b;--fail-bg:#fee2e2}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;color:var(--text);background:#fff;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans","DejaVu Sans",sans-serif}
header.top,main,footer{max-width:1180px;margin:0 auto;padding:0 24px}
header.top{padding-top:20px}
.eyebrow{margin:0;color:var(--muted);font-size:13px;letter-spacing:.06em;text-transform:uppercase}
h1{margin:2px 0 14px;font-size:28px;line-height:1.2}
h2{margin:34px 0 10px;font-size:21px;border-bottom:2px solid var(--line);padding-bottom:4px}
h3{margin:18px 0 6px;font-size:16px}
code{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;overflow-wrap:anywhere}
a{color:var(--accent)}
.muted{color:var(--muted);font-weight:normal}.small{font-size:13px}
.note{color:var(--muted);font-style:italic}
.verdict{border:2px solid;border-radius:8px;padding:12px 18px 14px;margin:0 0 14px}
.verdict h2{border:0;margin:0 0 4px;padding:0;font-size:24px}
.verdict-summary{margin:0 0 8px}
.verdict-pass{border-color:var(--pass);background:var(--pass-bg)}.verdict-pass h2{color:var(--pass)}
.verdict-warn{border-color:#b45309;background:var(--warn-bg)}.verdict-warn h2{color:var(--warn)}
.verdict-fail{border-color:var(--fail);background:var(--fail-bg)}.verdict-fail h2{color:var(--fail)}
.verdict table{background:#fff}
.verdict .note{margin:6px 0 0}
nav ul{list-style:none;display:flex;flex-wrap:wrap;gap:4px 16px;margin:0;padding:8px 0;border-bottom:1px solid var(--line);font-size:14px}
table{border-collapse:collapse;width:100%;margin:8px 0 12px;font-size:14px}
caption{text-align:left;font-weight:600;padding:4px 0;color:var(--muted)}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
thead th{background:var(--soft);border-bottom:2px solid var(--line);font-weight:600}
tbody th{font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;padding:0 7px;border-radius:10px;font-size:13px;font-weight:600;white-space:nowrap;background:var(--soft);color:var(--text)}
.badge-pass{background:var(--pass-bg);color:var(--pass)}.badge-warn{background:var(--warn-bg);color:var(--warn)}.badge-fail{background:var(--fail-bg);color:var(--fail)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(165px,1fr));gap:10px;margin:8px 0}.card.wide{grid-column:span 2}
.card{border:1px solid var(--line);border-radius:8px;padding:8px 12px}
.card dt{color:var(--muted);font-size:13px}.card dd{margin:0}
.card .big{display:block;font-size:21px;font-weight:650;font-variant-numeric:tabular-nums}
.bar{display:inline-block;width:90px;height:10px;background:var(--soft);border:1px solid var(--line);vertical-align:middle}
.bar span{display:block;height:100%;background:#2f6fb0}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(480px,100%),1fr));gap:14px 24px}
.param{border:1px solid var(--line);border-radius:8px;padding:4px 14px 8px;break-inside:avoid;min-width:0}.param svg{max-width:100%;height:auto}
.param h3{display:flex;gap:8px;align-items:center}
figure{margin:0}
svg.chart{width:100%;height:auto;display:block}
figcaption{font-size:13px;color:var(--muted)}
table.stats{font-size:12px;margin:4px 0}table.stats td,table.stats th{padding:2px 4px}
.scroll{overflow-x:auto}
table.heatmap td.heat{min-width:64px}
.heat.drift-none{background:#f0fdf4}.heat.drift-moderate{background:#fde68a}.heat.drift-major{background:#fca5a5}
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:4px 18px;padding:0;margin:6px 0;font-size:13px}
.swatch{display:inline-block;width:14px;height:14px;border:1px solid var(--muted);vertical-align:-2px;margin-right:5px}
.swatch.drift-none{background:#f0fdf4}.swatch.drift-moderate{background:#fde68a}.swatch.drift-major{background:#fca5a5}
.sym{font-size:11px}
.movers{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(340px,100%),1fr));gap:4px 24px}
table.compact{font-size:13px;width:auto;min-width:min(100%,520px)}table.compact td,table.compact th{padding:3px 6px}
.category{break-inside:avoid}
.facts{margin:4px 0;padding-left:20px;font-size:14px}
.settings{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;font-size:14px}
.settings dt{font-weight:600}.settings dd{margin:0}
.sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
footer{margin-top:36px;padding-bottom:28px;color:var(--muted);font-size:13px;border-top:1px solid var(--line)}
@media (max-width:700px){.charts,.movers{grid-template-columns:1fr}h1{font-size:23px}}
@media print{
body{font-size:11pt}nav{display:none}
header.top,main,footer{max-width:none;padding:0}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
.charts{grid-template-columns:1fr 1fr}.param,table,.card,.verdict{break-inside:avoid}
h2,h3{break-after:avoid}a{color:inherit;text-decoration:none}
}
`;
