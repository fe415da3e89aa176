/** Percentiles and formatting. Percentiles are nearest-rank over the sorted samples. */

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function sortNum(xs: readonly number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

export function median(xs: readonly number[]): number {
  return percentile(sortNum(xs), 50);
}

function mean(xs: readonly number[]): number {
  return xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Least-squares slope of y over x. */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  const mx = mean(xs);
  const my = mean(ys);
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? Number.NaN : num / den;
}

/** Deterministic PRNG (mulberry32) so a run's floor composition is reproducible from its samples. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffle<T>(xs: readonly T[], rand: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export function ms(x: number, digits?: number): string {
  if (!Number.isFinite(x)) return '—';
  const d = digits ?? (x < 10 ? 3 : x < 100 ? 2 : x < 1000 ? 1 : 0);
  return `${x.toFixed(d)} ms`;
}

export function ratio(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(2)}×` : '—';
}

export function kib(bytes: number): string {
  if (!Number.isFinite(bytes)) return '—';
  const k = bytes / 1024;
  if (Math.abs(k) >= 1024) return `${(k / 1024).toFixed(1)} MiB`;
  return `${k.toFixed(Math.abs(k) < 10 ? 2 : 1)} KiB`;
}

export function mark(ok: boolean | undefined): string {
  return ok === undefined ? '➖' : ok ? '✅ pass' : '❌ fail';
}
