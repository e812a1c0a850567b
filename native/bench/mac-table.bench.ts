// A switch learning new source MACs into a full table (8192 entries seen within the aging time)
// against the same into an empty one, measured in the same run: learning must not cost more when the
// table is full (issue #31: a full table used to be swept whole, 8192 entries, for every new source).
// Goal: ratio >= 0.5. Frames go through SwitchCore.forward() from a JavaScript port to another.
import { DataPlane, SwitchCore } from '../lib/dataplane.js';

const MAX_MACS = 8192;
const MS = Number(process.env.BENCH_MS ?? 1000);

function frame(dst: number, src: number): Buffer {
  const f = Buffer.alloc(60);
  f.writeUIntBE(dst, 0, 6);
  f.writeUIntBE(src, 6, 6);
  f.writeUInt16BE(0x88b5, 12);
  return f;
}

/** New sources per second through `sw`, each frame from a MAC never seen before. */
function rate(sw: SwitchCore, from: number, firstMac: number): number {
  const dst = 0x02_00_00_00_ff_fe;
  let mac = firstMac;
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(MS) * 1_000_000n;
  let now = process.hrtime.bigint();
  while (now < end) {
    for (let i = 0; i < 256; i++) sw.forward(from, frame(dst, mac++), 1000);
    n += 256;
    now = process.hrtime.bigint();
  }
  return n / (Number(now - start) / 1e9);
}

const plane = new DataPlane();
const make = () => {
  const sw = new SwitchCore(plane, { agingMs: 3_600_000, maxMacs: MAX_MACS, now: 0, onEscape: () => {} });
  return { sw, a: sw.addPort(1500), b: sw.addPort(1500) };
};
// Empty: each frame's source is learned, until the table fills; so the table is flushed every 4096.
const empty = make();
let learnedEmpty = 0;
{
  const dst = 0x02_00_00_00_ff_fe;
  let mac = 0x02_10_00_00_00_00;
  const start = process.hrtime.bigint();
  const end = start + BigInt(MS) * 1_000_000n;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 256; i++) empty.sw.forward(empty.a, frame(dst, mac++), 1000);
    learnedEmpty += 256;
    if (learnedEmpty % 4096 === 0) empty.sw.flush();
    now = process.hrtime.bigint();
  }
  learnedEmpty /= Number(now - start) / 1e9;
}
// Full: 8192 sources seen just now; every new one finds no room (none aged) and is not learned.
const full = make();
for (let i = 0; i < MAX_MACS; i++)
  full.sw.forward(full.b, frame(0x02_00_00_00_ff_fe, 0x02_20_00_00_00_00 + i), 1000);
const learnedFull = rate(full.sw, full.a, 0x02_30_00_00_00_00);
const ratio = learnedFull / learnedEmpty;
console.log(
  `mac table: ${(learnedEmpty / 1e3).toFixed(0)} k new sources/s into an empty table, ${(learnedFull / 1e3).toFixed(0)} k/s into a full one: ratio ${ratio.toFixed(2)} (goal >= 0.5)`,
);
empty.sw.close();
full.sw.close();
plane.close();
if (ratio < 0.5) process.exitCode = 1;
