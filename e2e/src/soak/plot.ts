/**
 * The soak's plot, drawn by gnuplot from its CSV (so a committed CSV can be drawn again):
 * `node --import tsx e2e/src/soak/plot.ts docs/soak/soak.csv docs/soak/soak.png [WARMUP] [INTERVAL_S]`.
 * RSS, emu's own memory (RSS without the guests' RAM) with its trend after the warm-up, and the JavaScript
 * heap in use (for CSVs that have them) and open fds on top, the guests' TX rate over each interval below.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { leastSquares, trendGrowth } from './trend.js';

export interface PlotOptions {
  /** the warm-up's end, in minutes: a dashed line */
  warmup: number;
  /** seconds between two samples */
  intervalSeconds: number;
}

export function plotSoak(csvPath: string, pngPath: string, options: PlotOptions): void {
  const [header, ...rows] = readFileSync(csvPath, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(','));
  const col = (name: string) => header!.indexOf(name);
  const txBytes = header!.flatMap((h, i) => (/_tx\d+_bytes$/.test(h) ? [i] : []));
  const sum = (r: string[]) => txBytes.reduce((n, i) => n + Number(r[i]), 0);
  const kib = (r: string[], name: string) => (col(name) < 0 ? Number.NaN : Number(r[col(name)]));
  const minute = (r: string[]) => Number(r[col('minute')]);
  const own = (r: string[]) => kib(r, 'rss_kib') - kib(r, 'guest_ram_kib');
  const settled = rows.filter((r) => minute(r) >= options.warmup).map((r) => ({ x: minute(r), y: own(r) }));
  const fits = settled.length >= 2 && settled.every((p) => !Number.isNaN(p.y));
  const trend = fits ? leastSquares(settled) : undefined;
  const mib = (n: number) => (Number.isNaN(n) ? 'NaN' : (n / 1024).toFixed(2));
  const data = rows.map((r, k) => {
    const mbps =
      k === 0 ? 'NaN' : (((sum(r) - sum(rows[k - 1]!)) * 8) / options.intervalSeconds / 1e6).toFixed(2);
    const line = trend && minute(r) >= options.warmup ? trend.at(minute(r)) : Number.NaN;
    return `${minute(r)} ${mib(kib(r, 'rss_kib'))} ${r[col('fds')]} ${mbps} ${mib(kib(r, 'heap_used_kib'))} ${mib(own(r))} ${mib(line)}`;
  });
  const trendTitle = trend
    ? `its trend after the warm-up (${(trendGrowth(settled) * 100).toFixed(2)} %)`
    : '';
  const maxFds = Math.max(...rows.map((r) => Number(r[col('fds')])));
  const minutes = rows[rows.length - 1]![col('minute')];
  const dir = mkdtempSync(join(tmpdir(), 'emu-soak-plot-'));
  try {
    const dataFile = join(dir, 'soak.dat');
    writeFileSync(dataFile, `${data.join('\n')}\n`);
    const script = `
set terminal pngcairo noenhanced size 1000,720 font ",10"
set output '${resolve(pngPath)}'
set multiplot layout 2,1 title "emu soak: two guests moving TCP through two emu_iavf NICs (${minutes} min)"
set xlabel 'minute'
set grid
set key below
set ylabel 'MiB'
set y2label 'open fds'
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:${maxFds * 2}]
set arrow from ${options.warmup}, graph 0 to ${options.warmup}, graph 1 nohead dashtype 2
plot '${dataFile}' using 1:2 with linespoints title 'RSS', '' using 1:6 with linespoints title "own memory (RSS without the guests' RAM)", '' using 1:7 with lines linecolor rgb 'black' dashtype 2 linewidth 2 title '${trendTitle}', '' using 1:5 with linespoints title 'JavaScript heap in use', '' using 1:3 axes x1y2 with steps linewidth 2 title 'open fds'
unset arrow
set ylabel 'Mbit/s (guest TX, both NICs)'
unset y2label
unset y2tics
plot '${dataFile}' using 1:4 with linespoints title 'TX rate over the minute'
unset multiplot
`;
    execFileSync('gnuplot', [], { input: script });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [csv, png, warmup = '5', interval = '60'] = process.argv.slice(2);
  if (!csv || !png) {
    console.error('usage: plot.ts CSV PNG [WARMUP_MINUTES] [INTERVAL_SECONDS]');
    process.exit(2);
  }
  plotSoak(csv, png, { warmup: Number(warmup), intervalSeconds: Number(interval) });
}
