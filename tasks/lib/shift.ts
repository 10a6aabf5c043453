/**
 * Exact distribution-shift figures of one parameter from a single walk over both versions'
 * values in ascending order (DuckDB sorts them; `ShiftScan` reads the sorted values once).
 *
 * Each value comes with a tag, `segment * 2 + side` (side 0 old, 1 new; segments 1..S). The
 * walk keeps running counts per version for the whole parameter (group 0) and for each
 * segment (group s), so at the end of every run of equal values it knows both empirical
 * distribution functions exactly:
 * - KS D is the largest |F_old - F_new| read at the end of a run (inside a run of ties the
 *   functions are not yet both up to date);
 * - Wasserstein-1 is the sum of |F_old - F_new| times the gap to the group's next value;
 * - the order statistics behind every quantile are the values where the running count of a
 *   version crosses their rank;
 * - PSI bins are cut at the old version's quantiles, which the walk finds as it goes: a value
 *   lying between the two order statistics an edge interpolates between waits until the
 *   upper one arrives (only new values can lie there), then is counted; a value several
 *   quantiles share (a point mass) gets a bin of its own (`psiEdges`), split off at the end
 *   from the bin it closes, whose last run the walk remembers;
 * - the chart bins are equal bins known in advance.
 * No state grows with the data except that short wait list.
 */

/** A quantile of the old version: 1-based order statistics `k <= k2`, and `frac` between them. */
export interface RankPair {
  k: number;
  k2: number;
  frac: number;
}

/** What the walk needs to know before it starts. */
export interface ShiftPlan {
  /** Number of segments S (tags carry 1..S); 1 when the parameter is not segmented. */
  segments: number;
  /** Non-null values per version: index 0 for the whole parameter, s for segment s. */
  oldCounts: readonly number[];
  newCounts: readonly number[];
  /** Order statistics (1-based ranks over the whole parameter) to report, per version (the PSI edges' are added). */
  oldRanks: readonly number[];
  newRanks: readonly number[];
  /** The old quantiles that cut the PSI bins, in ascending order of quantile. */
  psiQuantiles: readonly RankPair[];
  /** Equal chart bins: bin j holds lo + j * width <= x < lo + (j + 1) * width (the last one takes the rest). */
  chart: {lo: number; width: number; bins: number};
}

/** Shift of one group (the whole parameter or one segment). */
export interface GroupShift {
  /** Null unless both versions have values in the group. */
  ks: number | null;
  wasserstein: number | null;
  /** Values per PSI bin: bin i holds edges[i - 1] < x <= edges[i] (see `psiEdges`). */
  psiOld: number[];
  psiNew: number[];
}

/** Everything the walk found. */
export interface ShiftResult {
  /** Index 0: the whole parameter; s: segment s. */
  groups: GroupShift[];
  /** Order statistic by rank, per version. */
  oldOrder: Map<number, number>;
  newOrder: Map<number, number>;
  /** The PSI edges: the old quantiles as `psiEdges` makes them. */
  edges: number[];
  chartOld: number[];
  chartNew: number[];
}

/** A finished run of one group that waits for a PSI edge before it can be binned. */
interface Waiting {
  x: number;
  group: number;
  old: number;
  new: number;
}

/** The next double below x (x itself for -Infinity and NaN). */
export function nextDown(x: number): number {
  if (Number.isNaN(x) || x === -Infinity) return x;
  if (x === 0) return -Number.MIN_VALUE;
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  view.setBigUint64(0, x > 0 ? bits - 1n : bits + 1n);
  return view.getFloat64(0);
}

/**
 * The PSI edges from the old version's quantiles (ascending), bin i holding
 * edges[i - 1] < x <= edges[i]. A value several quantiles share is a point mass: many old
 * values equal it. Left in the bin it closes, it would share that bin with everything below
 * it, so a version moving the mass down to there would read a PSI of 0; it gets a bin of its
 * own, [v, v], opened by an edge at the next double below v.
 */
export function psiEdges(quantiles: readonly number[]): number[] {
  const edges: number[] = [];
  for (const q of quantiles) {
    const last = edges[edges.length - 1];
    if (last === undefined || q > last) {
      edges.push(q);
      continue;
    }
    if (q !== last) continue;
    const below = nextDown(q);
    const before = edges[edges.length - 2];
    // (Below the lowest double there is only -Infinity: a mass there already has the first bin.)
    if (below < q && Number.isFinite(below) && (before === undefined || below > before)) edges.splice(edges.length - 1, 0, below);
  }
  return edges;
}

/**
 * One walk over a parameter's values in ascending order (see above): `add` them in batches,
 * then `finish`. Written for speed (the walk sees every value: 20M per parameter at 10M rows
 * a version): counts live in one array indexed by tag, a run of one segment's values (nearly
 * every run) settles just its segment and the whole parameter, and the chart bins are cut
 * only when a value crosses a bin boundary.
 */
export class ShiftScan {
  readonly #plan: ShiftPlan;
  readonly #groups: number;
  // Per group g and version v at index 2g + v (a value's tag is its segment's index): values
  // expected in total, counted so far, and counted when the group's last run ended.
  readonly #total: Float64Array;
  readonly #count: Float64Array;
  readonly #atEnd: Float64Array;
  // Per group: F_old - F_new after its last run, where that run was, and the figures so far.
  readonly #diff: Float64Array;
  readonly #lastX: Float64Array;
  readonly #ks: Float64Array;
  readonly #w: Float64Array;
  // The current run: its value, the segment of its first value, and, when values of other
  // segments joined it, every segment it holds (#mark[s] === #runs marks them).
  #x = Number.NaN;
  #runs = 0;
  #segment = 0;
  #mixed = false;
  readonly #mark: Float64Array;
  readonly #touched: number[] = [];

  // Order statistics to pick, and the running counts at which the next one is due.
  readonly #oldRanks: number[];
  readonly #newRanks: number[];
  #nextOldRank = 0;
  #nextNewRank = 0;
  readonly #oldOrder = new Map<number, number>();
  readonly #newOrder = new Map<number, number>();
  // Old counts at which something happens (an order statistic, an edge), and the same for new.
  #oldEvent = 0;
  #newEvent = 0;

  // PSI: known edges, the next quantile to become an edge, the bin of the current value and
  // the edge that closes it, counts per group and bin, and the runs waiting for an edge.
  readonly #edges: number[] = [];
  #nextQuantile = 0;
  #psiBin = 0;
  #psiBinEnd = Infinity;
  // Runs above this value wait for the next edge (Infinity: none waits).
  #waitAbove = Infinity;
  readonly #psiStride: number;
  readonly #psiOld: Float64Array;
  readonly #psiNew: Float64Array;
  readonly #waiting: Waiting[] = [];
  // Every quantile as it resolves, ties kept (for psiEdges); per group and bin, the last run
  // binned there: its value and counts (a point mass, when a tie of quantiles closes the bin).
  readonly #quantileValues: number[] = [];
  readonly #lastRunX: Float64Array;
  readonly #lastRunOld: Float64Array;
  readonly #lastRunNew: Float64Array;

  // Chart: the bin of the current run (-1 before the first), the group-0 counts before it,
  // and a value below which no run can be in a later bin.
  #chartBin = -1;
  #chartBaseOld = 0;
  #chartBaseNew = 0;
  #chartCheck = -Infinity;
  readonly #chartOld: Float64Array;
  readonly #chartNew: Float64Array;

  constructor(plan: ShiftPlan) {
    this.#plan = plan;
    const g = plan.segments + 1;
    this.#groups = g;
    this.#total = new Float64Array(2 * g);
    for (let i = 0; i < g; i++) {
      this.#total[2 * i] = plan.oldCounts[i] ?? 0;
      this.#total[2 * i + 1] = plan.newCounts[i] ?? 0;
    }
    this.#count = new Float64Array(2 * g);
    this.#atEnd = new Float64Array(2 * g);
    this.#diff = new Float64Array(g);
    this.#lastX = new Float64Array(g).fill(Number.NaN);
    this.#ks = new Float64Array(g);
    this.#w = new Float64Array(g);
    this.#mark = new Float64Array(g);
    const edgeRanks = plan.psiQuantiles.flatMap((q) => [q.k, q.k2]);
    this.#oldRanks = [...new Set([...plan.oldRanks, ...edgeRanks])].sort((a, b) => a - b);
    this.#newRanks = [...new Set(plan.newRanks)].sort((a, b) => a - b);
    this.#psiStride = plan.psiQuantiles.length + 1;
    this.#psiOld = new Float64Array(g * this.#psiStride);
    this.#psiNew = new Float64Array(g * this.#psiStride);
    this.#lastRunX = new Float64Array(g * this.#psiStride).fill(Number.NaN);
    this.#lastRunOld = new Float64Array(g * this.#psiStride);
    this.#lastRunNew = new Float64Array(g * this.#psiStride);
    this.#chartOld = new Float64Array(plan.chart.bins);
    this.#chartNew = new Float64Array(plan.chart.bins);
    this.#scheduleEvents();
  }

  /** Takes the next `size` values (ascending, continuing the previous batch) and their tags. */
  add(tags: ArrayLike<number>, values: ArrayLike<number>, size: number): void {
    const count = this.#count;
    const groups = this.#groups;
    let x = this.#x;
    let segment = this.#segment;
    for (let i = 0; i < size; i++) {
      const value = values[i]!;
      const tag = tags[i]!;
      const s = tag >>> 1;
      if (s < 1 || s >= groups) throw new Error(`tag ${tag} names segment ${s}, outside 1..${groups - 1}`);
      if (value !== x) {
        if (this.#runs > 0) {
          if (value < x) throw new Error(`values are not in ascending order: ${value} after ${x}`);
          this.#endRun(x, segment);
        }
        this.#runs++;
        x = value;
        segment = s;
      } else if (s !== segment) {
        this.#join(segment, s);
      }
      count[tag & 1]!++;
      count[tag]!++;
    }
    this.#x = x;
    this.#segment = segment;
  }

  /** Ends the walk and returns the figures. */
  finish(): ShiftResult {
    if (this.#runs > 0) this.#endRun(this.#x, this.#segment);
    const count = this.#count;
    for (let g = 0; g < this.#groups; g++) {
      if (count[2 * g] !== this.#total[2 * g] || count[2 * g + 1] !== this.#total[2 * g + 1]) {
        throw new Error(`group ${g} has ${count[2 * g]} old and ${count[2 * g + 1]} new values, expected ${this.#total[2 * g]} and ${this.#total[2 * g + 1]}`);
      }
    }
    if (this.#waiting.length > 0) throw new Error(`${this.#waiting.length} runs still wait for a PSI edge at the end of the values`);
    if (this.#chartBin >= 0) {
      this.#chartOld[this.#chartBin]! += count[0]! - this.#chartBaseOld;
      this.#chartNew[this.#chartBin]! += count[1]! - this.#chartBaseNew;
    }
    // The walk's bins close at the distinct quantiles; a point mass is split off the bin it closes.
    const edges = psiEdges(this.#quantileValues);
    const walked = new Set(this.#edges);
    const split = new Set(edges.flatMap((edge, i) => (walked.has(edge) ? [] : [edges[i + 1]!])));
    const groups: GroupShift[] = [];
    for (let g = 0; g < this.#groups; g++) {
      const both = this.#total[2 * g]! > 0 && this.#total[2 * g + 1]! > 0;
      const psiOld: number[] = [];
      const psiNew: number[] = [];
      for (let bin = 0; bin <= this.#edges.length; bin++) {
        const at = g * this.#psiStride + bin;
        const edge = this.#edges[bin];
        if (edge !== undefined && split.has(edge)) {
          const mass = this.#lastRunX[at] === edge;
          const massOld = mass ? this.#lastRunOld[at]! : 0;
          const massNew = mass ? this.#lastRunNew[at]! : 0;
          psiOld.push(this.#psiOld[at]! - massOld, massOld);
          psiNew.push(this.#psiNew[at]! - massNew, massNew);
        } else {
          psiOld.push(this.#psiOld[at]!);
          psiNew.push(this.#psiNew[at]!);
        }
      }
      groups.push({ks: both ? this.#ks[g]! : null, wasserstein: both ? this.#w[g]! : null, psiOld, psiNew});
    }
    return {
      groups,
      oldOrder: this.#oldOrder,
      newOrder: this.#newOrder,
      edges,
      chartOld: Array.from(this.#chartOld),
      chartNew: Array.from(this.#chartNew),
    };
  }

  // A value of segment `s` ties with the current run, whose first value is of `first`.
  #join(first: number, s: number): void {
    const run = this.#runs;
    if (!this.#mixed) {
      this.#mixed = true;
      this.#mark[first] = run;
      this.#touched.push(first);
    }
    if (this.#mark[s] !== run) {
      this.#mark[s] = run;
      this.#touched.push(s);
    }
  }

  // The run of value x is complete: every count includes it. Settles the whole parameter and
  // each segment with values in the run.
  #endRun(x: number, segment: number): void {
    const count = this.#count;
    if (count[0]! >= this.#oldEvent || count[1]! >= this.#newEvent) this.#events(x);
    while (x > this.#psiBinEnd) {
      this.#psiBin++;
      this.#psiBinEnd = this.#edges[this.#psiBin] ?? Infinity;
    }
    if (x >= this.#chartCheck) this.#chartRun(x);
    const waits = x > this.#waitAbove;
    this.#settle(0, x, waits);
    if (!this.#mixed) this.#settle(segment, x, waits);
    else {
      for (const g of this.#touched) this.#settle(g, x, waits);
      this.#touched.length = 0;
      this.#mixed = false;
    }
  }

  // Group g has values in the run of x: bin them, then read both distribution functions.
  #settle(g: number, x: number, waits: boolean): void {
    const count = this.#count;
    const atEnd = this.#atEnd;
    const o = count[2 * g]!;
    const n = count[2 * g + 1]!;
    if (waits) this.#waiting.push({x, group: g, old: o - atEnd[2 * g]!, new: n - atEnd[2 * g + 1]!});
    else this.#bin(g * this.#psiStride + this.#psiBin, x, o - atEnd[2 * g]!, n - atEnd[2 * g + 1]!);
    atEnd[2 * g] = o;
    atEnd[2 * g + 1] = n;
    const totalOld = this.#total[2 * g]!;
    const totalNew = this.#total[2 * g + 1]!;
    if (totalOld === 0 || totalNew === 0) return;
    const last = this.#lastX[g]!;
    if (last === last) this.#w[g]! += Math.abs(this.#diff[g]!) * (x - last);
    const diff = o / totalOld - n / totalNew;
    this.#diff[g] = diff;
    this.#lastX[g] = x;
    if (Math.abs(diff) > this.#ks[g]!) this.#ks[g] = Math.abs(diff);
  }

  // Counts a group's run of x in PSI bin `at` (group and bin), remembering it as the bin's last.
  #bin(at: number, x: number, old: number, neu: number): void {
    this.#psiOld[at]! += old;
    this.#psiNew[at]! += neu;
    this.#lastRunX[at] = x;
    this.#lastRunOld[at] = old;
    this.#lastRunNew[at] = neu;
  }

  // The run of x may be in a later chart bin than the last: the counts before it close the
  // last bin. Bin j holds lo + j * width <= x < lo + (j + 1) * width (the last one the rest).
  #chartRun(x: number): void {
    const {lo, width, bins} = this.#plan.chart;
    const bin = width > 0 ? Math.max(0, Math.min(Math.floor((x - lo) / width), bins - 1)) : 0;
    if (bin !== this.#chartBin) {
      const before = this.#atEnd;
      if (this.#chartBin >= 0) {
        this.#chartOld[this.#chartBin]! += before[0]! - this.#chartBaseOld;
        this.#chartNew[this.#chartBin]! += before[1]! - this.#chartBaseNew;
      }
      this.#chartBaseOld = before[0]!;
      this.#chartBaseNew = before[1]!;
      this.#chartBin = bin;
    }
    // Below the next boundary by far more than rounding can move it: runs up to here stay in this bin.
    const boundary = lo + (bin + 1) * width;
    this.#chartCheck = width > 0 && bin < bins - 1 ? boundary - 1e-9 * (Math.abs(lo) + Math.abs(boundary) + width) : Infinity;
  }

  // A running count reached an order statistic's rank: record it, turn quantiles whose upper
  // order statistic has arrived into edges (binning the runs that waited for them), and
  // decide whether the next runs must wait.
  #events(x: number): void {
    const old = this.#count[0]!;
    while (this.#nextOldRank < this.#oldRanks.length && this.#oldRanks[this.#nextOldRank]! <= old) this.#oldOrder.set(this.#oldRanks[this.#nextOldRank++]!, x);
    while (this.#nextNewRank < this.#newRanks.length && this.#newRanks[this.#nextNewRank]! <= this.#count[1]!) this.#newOrder.set(this.#newRanks[this.#nextNewRank++]!, x);
    const quantiles = this.#plan.psiQuantiles;
    let resolved = false;
    while (this.#nextQuantile < quantiles.length && quantiles[this.#nextQuantile]!.k2 <= old) {
      const {k, k2, frac} = quantiles[this.#nextQuantile++]!;
      const a = this.#oldOrder.get(k)!;
      const edge = a + frac * (this.#oldOrder.get(k2)! - a);
      this.#quantileValues.push(edge);
      const previous = this.#edges[this.#edges.length - 1];
      if (previous === undefined || edge > previous) this.#edges.push(edge);
      resolved = true;
    }
    this.#psiBinEnd = this.#edges[this.#psiBin] ?? Infinity;
    if (resolved && this.#waiting.length > 0) {
      let bin = 0;
      for (const run of this.#waiting) {
        while (bin < this.#edges.length && this.#edges[bin]! < run.x) bin++;
        this.#bin(run.group * this.#psiStride + bin, run.x, run.old, run.new);
      }
      this.#waiting.length = 0;
    }
    // The next edge lies between its lower order statistic, reached now or before, and the
    // next old value, still to come: values above that statistic cannot be binned until then.
    const next = quantiles[this.#nextQuantile];
    this.#waitAbove = next !== undefined && next.k <= old ? this.#oldOrder.get(next.k)! : Infinity;
    this.#scheduleEvents();
  }

  #scheduleEvents(): void {
    const quantile = this.#plan.psiQuantiles[this.#nextQuantile];
    this.#oldEvent = Math.min(this.#oldRanks[this.#nextOldRank] ?? Infinity, quantile?.k2 ?? Infinity);
    this.#newEvent = this.#newRanks[this.#nextNewRank] ?? Infinity;
  }
}

/** KS and Wasserstein from counts in equal bins, each with a bound on its error. */
export interface BinnedShift {
  /** The largest |F_old - F_new| at a bin boundary: attained, so a lower bound of D. */
  ks: number | null;
  /** D is at most `ks + ksError` (the differences inside the bins are unseen). */
  ksError: number | null;
  /** Wasserstein-1 by the trapezoid rule over the bins; within `wassersteinError` of the exact value. */
  wasserstein: number | null;
  wassersteinError: number | null;
}

/**
 * The shift of one group from its values counted in equal bins of `width` (bin b spans
 * [lo + b width, lo + (b + 1) width)), as the pushed-down analysis gets them from BigQuery.
 * Inside a bin the distribution functions are unknown, but each moves by at most the bin's
 * share of its version, which bounds both errors.
 */
export function binnedShift(old: ArrayLike<number>, neu: ArrayLike<number>, width: number): BinnedShift {
  const {nOld, nNew} = totals(old, neu);
  if (nOld === 0 || nNew === 0) return {ks: null, ksError: null, wasserstein: null, wassersteinError: null};
  let cOld = 0;
  let cNew = 0;
  let previous = 0;
  let ks = 0;
  let inside = 0;
  let w = 0;
  let error = 0;
  for (let b = 0; b < Math.max(old.length, neu.length); b++) {
    const o = (old[b] ?? 0) / nOld;
    const n = (neu[b] ?? 0) / nNew;
    cOld += old[b] ?? 0;
    cNew += neu[b] ?? 0;
    const diff = cOld / nOld - cNew / nNew;
    ks = Math.max(ks, Math.abs(diff));
    // Inside the bin F_old - F_new lies between previous - n and previous + o.
    inside = Math.max(inside, previous + o, n - previous);
    w += (width * (Math.abs(previous) + Math.abs(diff))) / 2;
    if (o > 0 || n > 0) error += width * (o + n);
    previous = diff;
  }
  return {ks, ksError: Math.max(0, inside - ks), wasserstein: w, wassersteinError: error};
}

/**
 * The bins that could hold a larger |F_old - F_new| than the largest at a bin boundary
 * (the `ks` of `binnedShift`): inside bin b the difference is at most the one before the bin
 * plus the bin's share of one version. Only these need their values to make KS exact.
 */
export function ksCandidates(old: ArrayLike<number>, neu: ArrayLike<number>): number[] {
  const {nOld, nNew} = totals(old, neu);
  if (nOld === 0 || nNew === 0) return [];
  const bounds: number[] = [];
  let cOld = 0;
  let cNew = 0;
  let ks = 0;
  for (let b = 0; b < Math.max(old.length, neu.length); b++) {
    const previous = cOld / nOld - cNew / nNew;
    bounds.push(Math.max(previous + (old[b] ?? 0) / nOld, (neu[b] ?? 0) / nNew - previous));
    cOld += old[b] ?? 0;
    cNew += neu[b] ?? 0;
    ks = Math.max(ks, Math.abs(cOld / nOld - cNew / nNew));
  }
  return bounds.flatMap((bound, b) => ((old[b] ?? 0) + (neu[b] ?? 0) > 0 && bound > ks ? [b] : []));
}

/**
 * Exact KS from binned counts and the values of the candidate bins (`ksCandidates`): the
 * largest difference at a bin boundary, or inside a candidate bin, walking its values from
 * the counts before it. `values(b)` gives bin b's values per version, in any order.
 */
export function exactKs(old: ArrayLike<number>, neu: ArrayLike<number>, candidates: readonly number[], values: (b: number) => {old: number[]; new: number[]}): number | null {
  const {nOld, nNew} = totals(old, neu);
  if (nOld === 0 || nNew === 0) return null;
  const wanted = new Set(candidates);
  let cOld = 0;
  let cNew = 0;
  let ks = 0;
  for (let b = 0; b < Math.max(old.length, neu.length); b++) {
    if (wanted.has(b)) {
      const inBin = values(b);
      if (inBin.old.length !== (old[b] ?? 0) || inBin.new.length !== (neu[b] ?? 0)) {
        throw new Error(`bin ${b} holds ${old[b] ?? 0} old and ${neu[b] ?? 0} new values, ${inBin.old.length} and ${inBin.new.length} were read`);
      }
      const merged = [...inBin.old.map((x) => ({x, side: 0})), ...inBin.new.map((x) => ({x, side: 1}))].sort((p, q) => p.x - q.x);
      let o = cOld;
      let n = cNew;
      for (let i = 0; i < merged.length; i++) {
        if (merged[i]!.side === 0) o++;
        else n++;
        // Read the functions only at the end of a run of equal values.
        if (i + 1 === merged.length || merged[i + 1]!.x !== merged[i]!.x) ks = Math.max(ks, Math.abs(o / nOld - n / nNew));
      }
    }
    cOld += old[b] ?? 0;
    cNew += neu[b] ?? 0;
    ks = Math.max(ks, Math.abs(cOld / nOld - cNew / nNew));
  }
  return ks;
}

function totals(old: ArrayLike<number>, neu: ArrayLike<number>): {nOld: number; nNew: number} {
  let nOld = 0;
  let nNew = 0;
  for (let b = 0; b < old.length; b++) nOld += old[b]!;
  for (let b = 0; b < neu.length; b++) nNew += neu[b]!;
  return {nOld, nNew};
}
