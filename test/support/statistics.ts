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
