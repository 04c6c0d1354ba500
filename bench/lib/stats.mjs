// Small numeric helpers for the bench.

/** Nearest-rank percentile of an unsorted array (q in 0..100); null for no samples. */
export function percentile(values, q) {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((q / 100) * sorted.length) - 1));
  return sorted[rank];
}

export function summary(values) {
  if (values.length === 0) return { n: 0, p50: null, p90: null, p99: null, max: null };
  const sorted = Float64Array.from(values).sort();
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((q / 100) * sorted.length) - 1))];
  return { n: sorted.length, p50: round(at(50)), p90: round(at(90)), p99: round(at(99)), max: round(sorted[sorted.length - 1]) };
}

export const round = (x, digits = 2) => (x === null || x === undefined || !Number.isFinite(x) ? x : Math.round(x * 10 ** digits) / 10 ** digits);

/** Runs fn over items with at most `limit` in flight; results in order. */
export async function mapLimit(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i], i);
      }
    }),
  );
  return out;
}

/** Like mapLimit, but a failure is recorded (as {error}) instead of stopping the others. */
export function mapSettled(items, limit, fn) {
  return mapLimit(items, limit, async (x, i) => {
    try {
      return { ok: true, value: await fn(x, i) };
    } catch (err) {
      return { ok: false, error: String(err?.message ?? err) };
    }
  });
}
