/**
 * How much a series grew, read from its least-squares line rather than from two of its samples: one
 * sample of emu's memory moves by about as much as the soak's 2 % bar from one minute to the next, so a
 * bar on two samples passes or fails on where they fell (docs/reliability.md, "The soak").
 */
export interface Point {
  x: number;
  y: number;
}

/** The least-squares line through `points` (at least two, not all at one x). */
export function leastSquares(points: readonly Point[]): { slope: number; at: (x: number) => number } {
  if (points.length < 2) throw new RangeError(`a line needs two points, got ${points.length}`);
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  if (sxx === 0) throw new RangeError('a line needs points at two x or more');
  const slope = points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0) / sxx;
  return { slope, at: (x) => my + slope * (x - mx) };
}

/** Growth from the first point's x to the last's along the line, as a fraction of the line's start. */
export function trendGrowth(points: readonly Point[]): number {
  const line = leastSquares(points);
  const first = line.at(points[0]!.x);
  return line.at(points[points.length - 1]!.x) / first - 1;
}
