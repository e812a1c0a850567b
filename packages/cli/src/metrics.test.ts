/** `emu --metrics HOST:PORT`, scraped as Prometheus would, and `emu stats` over the control socket. */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { EmudevRegistry } from '@emu/emudev';
import { GpioReg } from '@emu/example-gpio';
import { DataPlane } from '@emu/native';
import { emptyBudgetStats, VfioUserClient } from '@emu/vfio-user';
import { expect } from 'chai';
import { EXIT_OK, EXIT_USAGE, main } from './main.js';
import { Metrics, parseListen } from './metrics.js';
import { emuPerTest } from './serving.fixture.js';
import type { StatsSnapshot } from './snapshot.js';
import { renderStats, si } from './stats-view.js';
import { Capture, spawnEmu, until } from './test-env.fixture.js';

const quietClient = { logger: { debug() {}, info() {}, warn() {}, error() {} } };

/** The value of one series in Prometheus text, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('metrics and emu stats', () => {
  const t = emuPerTest();
  const { serve } = t;

  it('parses HOST:PORT, bracketed IPv6 included, and refuses anything else', () => {
    expect(parseListen('127.0.0.1:9464')).to.deep.equal({ host: '127.0.0.1', port: 9464 });
    expect(parseListen('[::1]:0')).to.deep.equal({ host: '::1', port: 0 });
    expect(parseListen('localhost:80')).to.deep.equal({ host: 'localhost', port: 80 });
    for (const bad of ['9464', ':9464', '1.2.3.4:', '1.2.3.4:65536', '::1:80', 'a:b']) {
      expect(() => parseListen(bad), bad).to.throw(
        `expected HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464, not ${bad}`,
      );
    }
  });

  it('serves per-device and per-queue counters and message latency histograms in Prometheus text', async () => {
    await serve([
      '--vdev',
      `emu_gpio0,path=${t.tmp.path('g0.sock')}`,
      '--vdev',
      `emu_iavf0,path=${t.tmp.path('n0.sock')},net=metrics,queues=2`,
      '--metrics',
      '127.0.0.1:0',
    ]);
    const url = /metrics: (http:\/\/127\.0\.0\.1:\d+\/metrics)\n/.exec(t.out.text)?.[1];
    expect(url, t.out.text).to.be.a('string');
    const client = await VfioUserClient.connect(t.tmp.path('g0.sock'), quietClient);
    t.clients.push(client);
    for (let i = 0; i < 7; i++) await client.regionRead(0, GpioReg.ID, 4);
    await client.regionRead(0, 0x10_0000, 4).catch(() => {}); // past the BAR: an error reply

    const res = await fetch(url!);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).to.include('# TYPE emu_vfio_user_messages_total counter');
    expect(sample(text, 'emu_vfio_user_messages_total{device="emu_gpio0"}')).to.equal(9);
    expect(sample(text, 'emu_vfio_user_errors_total{device="emu_gpio0"}')).to.equal(1);
    expect(sample(text, 'emu_device_connected{device="emu_gpio0"}')).to.equal(1);
    expect(sample(text, 'emu_device_connected{device="emu_iavf0"}')).to.equal(0);
    expect(sample(text, 'emu_device_info{device="emu_iavf0",driver="emu_iavf",type="net"}')).to.equal(1);
    expect(sample(text, 'emu_link_up{device="emu_iavf0"}')).to.equal(1);
    expect(sample(text, 'emu_link_speed_mbps{device="emu_iavf0"}')).to.equal(10000);
    expect(sample(text, 'emu_link_up{device="emu_gpio0"}'), 'a GPIO has no link').to.equal(undefined);
    // Each device's client budget: held, limit, refusals per resource.
    expect(sample(text, 'emu_client_budget_limit{device="emu_gpio0",resource="dmaRequests"}')).to.equal(32);
    expect(sample(text, 'emu_client_budget_used{device="emu_gpio0",resource="dmaMaps"}')).to.equal(0);
    expect(sample(text, 'emu_client_budget_limit{device="emu_iavf0",resource="memoryMaps"}')).to.be.above(0);
    expect(sample(text, 'emu_client_budget_refused_total{device="emu_gpio0",resource="fds"}')).to.equal(0);
    for (const q of ['0', '1']) {
      for (const dir of ['rx', 'tx']) {
        expect(
          sample(text, `emu_queue_packets_total{device="emu_iavf0",queue="${q}",direction="${dir}"}`),
        ).to.equal(0);
      }
    }
    // Every message JavaScript handled is in the histogram: VERSION, 8 REGION_READs.
    const h = 'emu_vfio_user_message_duration_seconds';
    expect(sample(text, `${h}_count{device="emu_gpio0",command="REGION_READ"}`)).to.equal(8);
    expect(sample(text, `${h}_count{device="emu_gpio0",command="VERSION"}`)).to.equal(1);
    expect(sample(text, `${h}_bucket{le="+Inf",device="emu_gpio0",command="REGION_READ"}`)).to.equal(8);
    expect(sample(text, `${h}_sum{device="emu_gpio0",command="REGION_READ"}`)).to.be.greaterThan(0);
    expect(sample(text, 'emu_dataplane_workers')).to.equal(1);
    expect(text).to.match(/^emu_process_resident_memory_bytes \d+/m);

    // A device hot-removed takes its series with it.
    const removed = await main(['ctl', '--control', t.tmp.path('emu.ctl'), 'remove', 'emu_gpio0'], {
      stdout: new Capture(),
      stderr: new Capture(),
    });
    expect(removed).to.equal(EXIT_OK);
    const after = await (await fetch(url!)).text();
    expect(after).to.not.include('device="emu_gpio0"');
    expect(sample(after, 'emu_device_connected{device="emu_iavf0"}')).to.equal(0);
    const other = await fetch(url!.replace('/metrics', '/'));
    expect(other.status).to.equal(404);
  });

  it('makes one scrape for pipelined requests nobody reads: bounded memory, the devices served meanwhile', async function () {
    this.timeout(60_000);
    const vdevs = Array.from({ length: 8 }, (_, i) => [
      '--vdev',
      `emu_iavf${i},path=${t.tmp.path(`n${i}.sock`)},queues=16,net=pipe${i % 2}`,
    ]).flat();
    const run = spawnEmu([...vdevs, '--metrics', '127.0.0.1:0']);
    try {
      await until(
        () => run.io.stdout.includes('serving 8 devices'),
        `emu to serve (${run.io.stderr})`,
        15_000,
      );
      const url = new URL(/metrics: (http:\/\/\S+)\n/.exec(run.io.stdout)![1]);
      const scrape = await (await fetch(url)).text();
      expect(scrape.length, 'bytes of one scrape').to.be.above(64_000);
      const rss = () =>
        Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${run.child.pid}/status`, 'utf8'))![1]) * 1024;
      const before = rss();
      // 1,900 pipelined GETs on each of 3 connections (190 KB of requests), never read.
      const sockets = Array.from({ length: 3 }, () => {
        const s = connect(Number(url.port), url.hostname);
        s.on('error', () => {});
        s.pause();
        s.write(`GET /metrics HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`.repeat(1900));
        return s;
      });
      // Meanwhile a client of a device is answered promptly, again and again.
      const client = await VfioUserClient.connect(t.tmp.path('n0.sock'), quietClient);
      let worst = 0;
      const end = Date.now() + 3000;
      while (Date.now() < end) {
        const at = performance.now();
        await client.regionRead(7, 0, 4);
        worst = Math.max(worst, performance.now() - at);
        await new Promise((r) => setTimeout(r, 5));
      }
      client.close();
      const grew = rss() - before;
      expect(grew, 'bytes emu grew by').to.be.below(48 << 20);
      expect(worst, 'ms of the slowest REGION_READ').to.be.below(250);
      // A scraper that reads gets its answer, and Connection: close.
      const res = await fetch(url);
      expect(res.status).to.equal(200);
      expect(res.headers.get('connection')).to.equal('close');
      expect((await res.text()).length).to.be.above(64_000);
      for (const s of sockets) s.destroy();
      run.child.kill('SIGTERM');
      expect((await run.exit).code).to.equal(0);
    } finally {
      if (run.child.exitCode === null) run.child.kill('SIGKILL');
    }
  });

  it('keeps the latency series a client can name bounded, shares concurrent scrapes, and scrapes in slices', async () => {
    let reads = 0;
    const metrics = new Metrics({
      devices: () => {
        reads++;
        return [];
      },
      plane: DataPlane.shared(),
      startedAt: Date.now(),
    });
    const h = 'emu_vfio_user_message_duration_seconds_count';
    // vfio-user names a command it does not know UNKNOWN(n): a client picks n.
    for (let n = 100; n < 1100; n++) metrics.observe('emu_x0', `UNKNOWN(${n})`, 1e-5);
    metrics.observe('emu_x0', 'REGION_READ', 1e-5);
    for (let n = 0; n < 100; n++) metrics.observe('emu_x0', `NAME_${n}`, 1e-5);
    metrics.observe('emu_x0', 'REGION_READ', 1e-5);
    const text = await metrics.scrape();
    const series = text.split('\n').filter((l) => l.startsWith(`${h}{`));
    expect(series).to.have.length(24);
    expect(sample(text, `${h}{device="emu_x0",command="UNKNOWN"}`)).to.equal(1000);
    expect(sample(text, `${h}{device="emu_x0",command="REGION_READ"}`)).to.equal(2);
    expect(sample(text, `${h}{device="emu_x0",command="other"}`)).to.equal(100 - 21);
    metrics.forget('emu_x0');
    expect(await metrics.scrape()).to.not.include('emu_x0');

    reads = 0;
    const texts = await Promise.all(Array.from({ length: 50 }, () => metrics.scrape()));
    expect(reads, 'device readings for 50 scrapes at once').to.equal(1);
    expect(new Set(texts).size).to.equal(1);
    let turns = 0;
    let counting = true;
    const count = () => {
      turns++;
      if (counting) setImmediate(count);
    };
    setImmediate(count);
    await metrics.scrape();
    counting = false;
    expect(turns, 'turns of the event loop during one scrape').to.be.above(10);
  });

  it('a --metrics address that cannot be bound is a usage error, and nothing is left serving', async () => {
    const first = await serve([
      '--vdev',
      `emu_gpio0,path=${t.tmp.path('g0.sock')}`,
      '--metrics',
      '127.0.0.1:0',
    ]);
    const port = /127\.0\.0\.1:(\d+)\/metrics/.exec(t.out.text)![1];
    const e = new Capture();
    const second = new EmudevRegistry();
    const code = await main(
      ['--vdev', `emu_gpio1,path=${t.tmp.path('g1.sock')}`, '--no-control', '--metrics', `127.0.0.1:${port}`],
      { stdout: new Capture(), stderr: e, registry: second, signal: new AbortController().signal },
    );
    expect(code).to.equal(EXIT_USAGE);
    expect(e.text).to.match(new RegExp(`^emu: --metrics 127\\.0\\.0\\.1:${port}: listen EADDRINUSE`));
    expect(second.list()).to.deep.equal([]);
    first.stop.abort();
    expect(await first.done).to.equal(EXIT_OK);
  });

  it('renders rates between two readings: per device and per queue, pps and bit/s in SI units', () => {
    expect([0, 999, 1000, 1234, 12_345_678, 9.99e12].map(si)).to.deep.equal([
      '0',
      '999',
      '1.00k',
      '1.23k',
      '12.3M',
      '9.99T',
    ]);
    const reading = (time: number, rx: number, tx: number, irqs: number): StatsSnapshot => ({
      time,
      uptimeSeconds: time / 1000,
      devices: [
        {
          name: 'emu_iavf0',
          driver: 'emu_iavf',
          type: 'net',
          state: 'started',
          socket: { path: '/run/emu/a.sock', connected: true },
          commands: 10,
          errors: 0,
          irqs,
          irqsDropped: 0,
          trapped: 0,
          dmaReadBytes: 0,
          dmaWriteBytes: 0,
          memoryFaults: 0,
          budget: emptyBudgetStats(),
          link: { up: true, speedMbps: 10000 },
          queues: [
            { queue: 0, direction: 'rx', packets: rx, bytes: rx * 1500, drops: 2, errors: 0 },
            { queue: 0, direction: 'tx', packets: tx, bytes: tx * 64, drops: 0, errors: 1 },
          ],
          status: '',
        },
      ],
      dataPlane: { workers: 1, running: 1, nics: 1, frames: tx },
    });
    const text = renderStats(
      reading(62_000, 3000, 500_000, 40),
      reading(60_000, 1000, 100_000, 20),
      '/run/emu/emu.ctl',
    );
    const lines = text.split('\n');
    expect(lines[0]).to.match(
      /^emu stats {2}\/run\/emu\/emu\.ctl {2}\d\d:\d\d:\d\d {2}up 62s {2}rates over 2\.0s$/,
    );
    expect(lines.slice(1, 4).map((l) => l.split(/ {2,}/))).to.deep.equal([
      ['DEVICE', 'LINK', 'CLIENT', 'RX pps', 'RX bit/s', 'TX pps', 'TX bit/s', 'DROPS', 'ERRORS', 'IRQ/s'],
      ['emu_iavf0', 'up 10000Mb/s', 'yes', '1.00k', '12.0M', '200k', '102M', '2', '1', '10'],
      ['', 'q0', '1.00k', '12.0M', '200k', '102M', '2', '1'],
    ]);
    expect(lines[4]).to.equal('data plane: 1 of 1 workers running, 1 NICs, 200k frames/s');
  });

  it('emu stats --once reads a running emu twice and prints the view; errors say what to do', async () => {
    await serve(['--vdev', `emu_gpio0,path=${t.tmp.path('g0.sock')}`]);
    const o = new Capture();
    const e = new Capture();
    const code = await main(['stats', '--once', '--interval', '0.1', '--control', t.tmp.path('emu.ctl')], {
      stdout: o,
      stderr: e,
    });
    expect(code, e.text).to.equal(EXIT_OK);
    expect(o.text).to.match(/^emu stats {2}\S+emu\.ctl {2}\d\d:\d\d:\d\d {2}up \d+s {2}rates over 0\.\ds\n/);
    expect(o.text).to.match(/\nemu_gpio0 +- +no +0 +0 +0 +0 +0 +0 +0\n/);
    const json = new Capture();
    await main(['stats', '--once', '--json', '--interval', '0.1', '--control', t.tmp.path('emu.ctl')], {
      stdout: json,
      stderr: e,
    });
    const { before, now } = JSON.parse(json.text) as { before: StatsSnapshot; now: StatsSnapshot };
    expect(now.time - before.time).to.be.at.least(90);
    expect(now.devices.map((d) => d.name)).to.deep.equal(['emu_gpio0']);

    // The live view: one reading per interval until stopped.
    const live = new Capture();
    const stop = new AbortController();
    const running = main(['stats', '--interval', '0.1', '--control', t.tmp.path('emu.ctl')], {
      stdout: live,
      stderr: e,
      signal: stop.signal,
    });
    await until(() => (live.text.match(/^emu stats /gm) ?? []).length >= 2, 'two views');
    stop.abort();
    expect(await running).to.equal(EXIT_OK);

    const bad = new Capture();
    expect(await main(['stats', '--interval', '0'], { stdout: new Capture(), stderr: bad })).to.equal(
      EXIT_USAGE,
    );
    expect(bad.text).to.include('expected seconds from 0.1 to 3600');
    const gone = new Capture();
    expect(
      await main(['stats', '--once', '--control', t.tmp.path('none.ctl')], {
        stdout: new Capture(),
        stderr: gone,
      }),
    ).to.equal(1);
    expect(gone.text).to.equal(
      `emu stats: no control socket at ${t.tmp.path('none.ctl')}: is emu running? (give its path with --control or $EMU_CONTROL)\n`,
    );
  });
});
