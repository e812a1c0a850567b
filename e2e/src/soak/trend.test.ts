import { expect } from 'chai';
import { leastSquares, trendGrowth } from './trend.js';

describe('trendGrowth', () => {
  it('reads a straight line exactly', () => {
    const points = [0, 1, 2, 3, 4].map((x) => ({ x, y: 100 + 5 * x }));
    expect(leastSquares(points).slope).to.be.closeTo(5, 1e-9);
    expect(trendGrowth(points)).to.be.closeTo(0.2, 1e-9);
  });

  it('sees no growth in a flat series whose first sample fell low', () => {
    // As the 2026-12-07 soak's own memory: a dip at the warm-up's end, then noise around one level.
    const ys = [64144, 64744, 65340, 65184, 65184, 65324, 64900, 65200, 64800, 65300, 64950, 65250];
    const points = ys.map((y, x) => ({ x, y }));
    expect(ys[ys.length - 1]! / ys[0]! - 1).to.be.above(0.015);
    expect(Math.abs(trendGrowth(points))).to.be.below(0.01);
  });

  it('sees steady growth under the noise', () => {
    // 100 KiB a minute for 25 minutes on 65 MiB (+3.8 %), with ±1 MiB of noise.
    const points = Array.from({ length: 26 }, (_, x) => ({ x, y: 66560 + 100 * x + (x % 2 ? 1024 : -1024) }));
    expect(trendGrowth(points)).to.be.within(0.033, 0.043);
  });

  it('refuses a series it cannot fit', () => {
    expect(() => trendGrowth([{ x: 1, y: 1 }])).to.throw(RangeError, /two points/);
    expect(() =>
      trendGrowth([
        { x: 1, y: 1 },
        { x: 1, y: 2 },
      ]),
    ).to.throw(RangeError, /two x/);
  });
});
