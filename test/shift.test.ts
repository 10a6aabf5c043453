/**
 * ShiftScan (the analysis' single walk over sorted values) against direct computations on
 * the same values: random data with heavy ties, small and empty segments, fewer old values
 * than PSI bins, values fed in uneven batches.
 */
import {describe, expect, it} from 'vitest';
import {ShiftScan, binnedShift, exactKs, ksCandidates} from '../tasks/lib/shift.js';
import type {RankPair} from '../tasks/lib/shift.js';
import {ks, psiReference, wasserstein} from './support/statistics.js';

interface Value {
  x: number;
  segment: number;
  side: 0 | 1;
}

// A small deterministic generator (mulberry32), so a failure reproduces.
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pair(n: number, q: number): RankPair {
  const h = (n - 1) * q;
  const k = Math.floor(h);
  return {k: k + 1, k2: Math.min(k + 1, n - 1) + 1, frac: h - k};
}

function scenario(seed: number, size: {old: number; new: number}, segments: number, levels: number, bins: number) {
  const r = random(seed);
  const values: Value[] = [];
  for (const side of [0, 1] as const) {
    for (let i = 0; i < (side === 0 ? size.old : size.new); i++) {
      const segment = 1 + Math.floor(r() * segments);
      // Few distinct levels give heavy ties; segment 2 of the new version is shifted.
      const x = Math.floor(r() * levels) / 4 + (side === 1 && segment === 2 ? 1.5 : 0);
      values.push({x, segment, side});
    }
  }
  values.sort((a, b) => a.x - b.x);
  const of = (side: 0 | 1, segment?: number) => values.filter((v) => v.side === side && (segment === undefined || v.segment === segment)).map((v) => v.x);
  const counts = (side: 0 | 1) => [of(side).length, ...Array.from({length: segments}, (_, s) => of(side, s + 1).length)];
  const oldAll = of(0);
  const newAll = of(1);
  const lo = Math.min(...values.map((v) => v.x));
  const hi = Math.max(...values.map((v) => v.x));
  const psiQuantiles = oldAll.length === 0 ? [] : Array.from({length: bins - 1}, (_, i) => pair(oldAll.length, (i + 1) / bins));
  const summary = [0.05, 0.5, 0.95];
  const scan = new ShiftScan({
    segments,
    oldCounts: counts(0),
    newCounts: counts(1),
    oldRanks: oldAll.length === 0 ? [] : summary.flatMap((q) => [pair(oldAll.length, q).k, pair(oldAll.length, q).k2]),
    newRanks: newAll.length === 0 ? [] : summary.flatMap((q) => [pair(newAll.length, q).k, pair(newAll.length, q).k2]),
    psiQuantiles,
    chart: {lo, width: hi > lo ? (hi - lo) / 7 : 0, bins: 7},
  });
  // Uneven batches, split inside runs of ties too.
  for (let at = 0; at < values.length; ) {
    const size = Math.min(values.length - at, 1 + Math.floor(r() * 37));
    const batch = values.slice(at, at + size);
    scan.add(Uint32Array.from(batch, (v) => v.segment * 2 + v.side), Float64Array.from(batch, (v) => v.x), size);
    at += size;
  }
  return {result: scan.finish(), of, oldAll, newAll, segments, summary, bins, lo, hi};
}

describe('ShiftScan', () => {
  const cases = [
    {name: 'ties, five segments', seed: 1, size: {old: 800, new: 700}, segments: 5, levels: 40, bins: 10},
    {name: 'continuous values', seed: 2, size: {old: 500, new: 650}, segments: 3, levels: 1e9, bins: 10},
    {name: 'fewer old values than bins', seed: 3, size: {old: 6, new: 90}, segments: 2, levels: 50, bins: 20},
    {name: 'one level', seed: 4, size: {old: 40, new: 30}, segments: 2, levels: 1, bins: 10},
    {name: 'point masses (three levels, ten bins)', seed: 7, size: {old: 300, new: 250}, segments: 3, levels: 3, bins: 10},
    {name: 'no new values', seed: 5, size: {old: 50, new: 0}, segments: 2, levels: 9, bins: 4},
    {name: 'no old values', seed: 6, size: {old: 0, new: 50}, segments: 2, levels: 9, bins: 4},
  ];
  for (const c of cases) {
    it(`matches direct computations: ${c.name}`, () => {
      const {result, of, oldAll, newAll, segments, summary, bins, lo, hi} = scenario(c.seed, c.size, c.segments, c.levels, c.bins);
      const both = oldAll.length > 0 && newAll.length > 0;
      const reference = psiReference(oldAll, bins);
      expect(result.edges).toEqual(reference.edges);
      for (let g = 0; g <= segments; g++) {
        const a = g === 0 ? oldAll : of(0, g);
        const b = g === 0 ? newAll : of(1, g);
        const group = result.groups[g]!;
        if (a.length > 0 && b.length > 0) {
          expect(group.ks).toBeCloseTo(ks(a, b), 12);
          expect(group.wasserstein).toBeCloseTo(wasserstein(a, b), 10);
        } else {
          expect(group.ks).toBeNull();
          expect(group.wasserstein).toBeNull();
        }
        expect(group.psiOld).toEqual(reference.count(a));
        expect(group.psiNew).toEqual(reference.count(b));
      }
      for (const q of summary) {
        if (oldAll.length > 0) {
          const p = pair(oldAll.length, q);
          expect(result.oldOrder.get(p.k)).toBe(oldAll[p.k - 1]);
          expect(result.oldOrder.get(p.k2)).toBe(oldAll[p.k2 - 1]);
        }
        if (newAll.length > 0) expect(result.newOrder.get(pair(newAll.length, q).k)).toBe(newAll[pair(newAll.length, q).k - 1]);
      }
      const width = hi > lo ? (hi - lo) / 7 : 0;
      const chart = (values: number[]) => {
        const counts = new Array<number>(7).fill(0);
        for (const x of values) counts[width > 0 ? Math.min(Math.floor((x - lo) / width), 6) : 0]!++;
        return counts;
      };
      expect(result.chartOld).toEqual(chart(oldAll));
      expect(result.chartNew).toEqual(chart(newAll));
      if (both) expect(result.groups[0]!.ks).toBeGreaterThan(0);
    });
  }

  it('refuses values out of order, unknown segments and counts that do not add up', () => {
    const plan = {segments: 1, oldCounts: [1, 1], newCounts: [1, 1], oldRanks: [], newRanks: [], psiQuantiles: [], chart: {lo: 0, width: 1, bins: 1}};
    expect(() => new ShiftScan(plan).add(Uint32Array.of(2, 3), Float64Array.of(2, 1), 2)).toThrow('values are not in ascending order: 1 after 2');
    expect(() => new ShiftScan(plan).add(Uint32Array.of(4), Float64Array.of(1), 1)).toThrow('tag 4 names segment 2, outside 1..1');
    const short = new ShiftScan(plan);
    short.add(Uint32Array.of(2), Float64Array.of(1), 1);
    expect(() => short.finish()).toThrow('group 0 has 1 old and 0 new values, expected 1 and 1');
  });
});

describe('KS from binned counts (the pushed-down analysis)', () => {
  // Values in equal bins, as BigQuery counts them; then the exact D from the candidate bins' values only.
  function binned(seed: number, size: number, levels: number, shift: number, bins: number) {
    const r = random(seed);
    const a = Array.from({length: size}, () => Math.floor(r() * levels) / levels);
    const b = Array.from({length: size + 17}, () => Math.floor(r() * levels) / levels + shift);
    const lo = Math.min(...a, ...b);
    const width = (Math.max(...a, ...b) - lo) / bins;
    const bin = (x: number) => Math.min(Math.floor((x - lo) / width), bins - 1);
    const count = (xs: number[]) => {
      const c = new Array<number>(bins).fill(0);
      for (const x of xs) c[bin(x)]!++;
      return c;
    };
    return {a: a.sort((p, q) => p - q), b: b.sort((p, q) => p - q), old: count(a), neu: count(b), bin, width};
  }

  for (const [name, seed, levels, shift] of [['a shift', 1, 1e6, 0.05], ['heavy ties', 2, 13, 0.02], ['no shift', 3, 1e6, 0]] as const) {
    it(`is exact with only the candidate bins read: ${name}`, () => {
      const {a, b, old, neu, bin, width} = binned(seed, 3000, levels, shift, 200);
      const exact = ks(a, b);
      const bounded = binnedShift(old, neu, width);
      expect(bounded.ks!).toBeLessThanOrEqual(exact + 1e-12);
      expect(exact).toBeLessThanOrEqual(bounded.ks! + bounded.ksError! + 1e-12);
      const candidates = ksCandidates(old, neu);
      expect(candidates.length).toBeLessThan(200);
      const read = new Set<number>();
      const value = exactKs(old, neu, candidates, (k) => {
        read.add(k);
        return {old: a.filter((x) => bin(x) === k), new: b.filter((x) => bin(x) === k)};
      });
      expect(value).toBeCloseTo(exact, 12);
      expect([...read].sort((p, q) => p - q)).toEqual(candidates);
    });
  }

  it('refuses a bin whose values do not match its counts', () => {
    expect(() => exactKs([1, 1], [1, 1], [0], () => ({old: [], new: [0.5]}))).toThrow('bin 0 holds 1 old and 1 new values, 0 and 1 were read');
  });
});

