import { expect, test } from 'vitest';
import fc from 'fast-check';
import { lineChart, niceTicks, smooth } from '../../src/ganpo/plot.js';
import { fmtTime } from '../../src/ganpo/progress.js';

test('nice ticks are increasing, round, and lie within the range', () => {
  fc.assert(fc.property(fc.double({ min: -1e6, max: 1e6, noNaN: true }), fc.double({ min: 1e-6, max: 1e6, noNaN: true }), (lo, span) => {
    const t = niceTicks(lo, lo + span);
    expect(t.length).toBeGreaterThan(0);
    for (let i = 1; i < t.length; i++) expect(t[i]).toBeGreaterThan(t[i - 1]);
    // Ticks are rounded for display to a tenth of their spacing, so they may sit that far outside.
    for (const v of t) {
      expect(v).toBeGreaterThanOrEqual(lo - span * 0.05);
      expect(v).toBeLessThanOrEqual(lo + span + span * 0.05);
    }
  }), { examples: [[-361667.57812499994, 0.00000999998883344233]] });
});

test('a chart is a well-formed SVG with one path per multi-point series and escaped labels', () => {
  const svg = lineChart([{ name: 'a<b', points: [[0, 1], [1, 2], [2, NaN]] }, { name: 'c', points: [[0, 3], [1, 1]] }], { title: 'T & U', xLabel: 'x', yLabel: 'y' });
  expect(svg.startsWith('<svg')).toBe(true);
  expect(svg.trim().endsWith('</svg>')).toBe(true);
  expect(svg.match(/<path /g)?.length).toBe(2);
  expect(svg).toContain('a&lt;b');
  expect(svg).toContain('T &amp; U');
  expect(svg).not.toContain('NaN');
});

test('smoothing keeps x and starts at the first value', () => {
  expect(smooth([[0, 1], [1, 3]], 0.5)).toEqual([[0, 1], [1, 2]]);
  expect(fmtTime(3725)).toBe('1:02:05');
});
