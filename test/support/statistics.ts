/**
 * Straightforward computations of the analysis' statistics, for tests to check the product's
 * figures against: quadratic or log-linear, obviously right, fine at test sizes.
 */

const ascending = (values: readonly number[]) => [...values].sort((a, b) => a - b);

/** The empirical distribution function of `sorted` at x: the share of values <= x. */
export function ecdf(sorted: readonly number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo / sorted.length;
}

/** Two-sample Kolmogorov-Smirnov D: the largest |F_a - F_b| at any value of either sample. */
export function ks(a: readonly number[], b: readonly number[]): number {
  const [sa, sb] = [ascending(a), ascending(b)];
  let d = 0;
  for (const x of [...sa, ...sb]) d = Math.max(d, Math.abs(ecdf(sa, x) - ecdf(sb, x)));
  return d;
}

/** Wasserstein-1: the integral of |F_a - F_b| between consecutive distinct values. */
export function wasserstein(a: readonly number[], b: readonly number[]): number {
  const [sa, sb] = [ascending(a), ascending(b)];
  const xs = [...new Set([...sa, ...sb])].sort((p, q) => p - q);
  let w = 0;
  for (let i = 0; i + 1 < xs.length; i++) w += Math.abs(ecdf(sa, xs[i]!) - ecdf(sb, xs[i]!)) * (xs[i + 1]! - xs[i]!);
  return w;
}

/** quantile_cont: position (n - 1) q, interpolated between the order statistics around it. */
export function quantile(sorted: readonly number[], q: number): number {
  const h = (sorted.length - 1) * q;
  const k = Math.floor(h);
  return sorted[k]! + (h - k) * (sorted[Math.min(k + 1, sorted.length - 1)]! - sorted[k]!);
}

/**
 * The PSI bins on the old version's quantiles at 1/bins, 2/bins, ...: each distinct quantile
 * v closes a bin (previous, v]; a value two or more quantiles share (a point mass) has the
 * bin [v, v] to itself, after (previous, v). `edges` are the bins' upper ends as the product
 * writes them (a point mass's bin opened at the double just below v), `count` the values of a
 * sample in each bin, tested interval by interval.
 */
export function psiReference(old: readonly number[], bins: number): {edges: number[]; count: (values: readonly number[]) => number[]} {
  const sorted = ascending(old);
  const quantiles = sorted.length === 0 ? [] : Array.from({length: bins - 1}, (_, i) => quantile(sorted, (i + 1) / bins));
  const distinct = [...new Set(quantiles)].sort((a, b) => a - b);
  const shared = (v: number) => quantiles.filter((q) => q === v).length >= 2;
  const inBin: ((x: number) => boolean)[] = [];
  let below: number | undefined;
  for (const v of distinct) {
    const after = below;
    const above = (x: number) => after === undefined || x > after;
    if (shared(v)) inBin.push((x) => above(x) && x < v, (x) => x === v);
    else inBin.push((x) => above(x) && x <= v);
    below = v;
  }
  inBin.push((x) => below === undefined || x > below);
  const justBelow = (v: number) => {
    const bits = new BigInt64Array(new Float64Array([v]).buffer)[0]!;
    return v === 0 ? -Number.MIN_VALUE : new Float64Array(new BigInt64Array([v > 0 ? bits - 1n : bits + 1n]).buffer)[0]!;
  };
  return {
    edges: distinct.flatMap((v) => (shared(v) ? [justBelow(v), v] : [v])),
    count: (values) => inBin.map((test) => values.filter(test).length),
  };
}

/** PSI over `psiReference`'s bins, empty bins floored at 1e-4. */
export function psi(old: readonly number[], neu: readonly number[], bins = 10): number {
  const {count} = psiReference(old, bins);
  const shares = (values: readonly number[]) => count(values).map((c) => Math.max(c / values.length, 1e-4));
  const [po, pn] = [shares(old), shares(neu)];
  return po.reduce((sum, o, i) => sum + (pn[i]! - o) * Math.log(pn[i]! / o), 0);
}

/**
 * A categorical column's figures as analysis.json reports them, from every (side, value, n)
 * count: frequencies, the Jensen-Shannon distance (base 2) over the non-null values, the
 * most frequent values (by the larger count, then by value), the added and vanished values,
 * each list cut at `cap`.
 */
export function categoricalFromCounts(counts: readonly Record<string, unknown>[], cap: number) {
  const side = (k: 0 | 1) => {
    const m = new Map<string, number>();
    let nulls = 0;
    for (const r of counts) {
      if (Number(r['side']) !== k) continue;
      if (r['value'] === null) nulls = Number(r['n']);
      else m.set(String(r['value']), Number(r['n']));
    }
    return {m, nulls, count: [...m.values()].reduce((a, b) => a + b, 0)};
  };
  const [o, n] = [side(0), side(1)];
  const rank = (v: string) => Math.max(o.m.get(v) ?? 0, n.m.get(v) ?? 0);
  const all = [...new Set([...o.m.keys(), ...n.m.keys()])].sort((a, b) => rank(b) - rank(a) || (a < b ? -1 : a > b ? 1 : 0));
  const added = all.filter((v) => !o.m.has(v)).sort((a, b) => n.m.get(b)! - n.m.get(a)! || (a < b ? -1 : 1));
  const vanished = all.filter((v) => !n.m.has(v)).sort((a, b) => o.m.get(b)! - o.m.get(a)! || (a < b ? -1 : 1));
  let divergence = 0;
  for (const v of all) {
    const p = (o.m.get(v) ?? 0) / o.count;
    const q = (n.m.get(v) ?? 0) / n.count;
    const mid = (p + q) / 2;
    if (p > 0) divergence += 0.5 * p * Math.log2(p / mid);
    if (q > 0) divergence += 0.5 * q * Math.log2(q / mid);
  }
  const pct = (count: number, total: number) => (total > 0 ? (100 * count) / total : 0);
  return {
    type: 'categorical' as const,
    old: {count: o.count, nulls: o.nulls, distinct: o.m.size},
    new: {count: n.count, nulls: n.nulls, distinct: n.m.size},
    js_distance: o.count > 0 && n.count > 0 ? Math.sqrt(Math.max(divergence, 0)) : null,
    categories: all.slice(0, cap).map((v) => ({value: v, old: o.m.get(v) ?? 0, new: n.m.get(v) ?? 0, old_pct: pct(o.m.get(v) ?? 0, o.count), new_pct: pct(n.m.get(v) ?? 0, n.count)})),
    new_categories: added.slice(0, cap),
    vanished_categories: vanished.slice(0, cap),
    truncated: all.length > cap || added.length > cap || vanished.length > cap,
  };
}
