/**
 * DPDK starts and stops single queues at runtime (testpmd's `port 0 rxq 1 stop`, iavf_dev_rx_queue_stop
 * and _start: DISABLE_QUEUES and ENABLE_QUEUES naming that queue alone, its ring re-posted from
 * descriptor 0). Guest D runs testpmd's icmpecho on emu_iavf0 (2 queue pairs, every RSS hash sent to
 * queue 0 by the redirection table) and stops and starts RX and TX queue 1 over and over, while guest L (Linux iavf, emu_iavf1)
 * pings it through emu's switch. Each ping must come back exactly once (no `DUP!`), intact (the
 * kernel drops an echo reply whose checksum fails: InCsumErrors), and emu must log no error: the queue
 * restarts may not touch queue 0, which carries the traffic (issue #31, defect 8: they used to put
 * every queue's head back to 0). Needs root; `pnpm e2e`.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type BootGuestResult, bootGuest, ensureGuestEnvironment, up } from '@emu/guest';
import { expect } from 'chai';
import { EMU_BIN, EmuProcess } from './emu-process.js';
import { explainRun } from './explain.js';

const run = promisify(execFile);
const TARBALL_SCRIPT = fileURLToPath(new URL('../../tools/guest/scripts/dpdk-tarball.sh', import.meta.url));
const PMDS = 'usr/lib/x86_64-linux-gnu/dpdk/pmds-25.0';
const CYCLES = 25;
const PINGS = 100;

/** Guest D: testpmd icmpecho on 2 queue pairs; queue 1 stopped and started CYCLES times. */
const TESTPMD = `chmod 755 / /usr /usr/lib 2>/dev/null
cd / && tar -xf /emu/dpdk.tar && rm /emu/dpdk.tar
mkdir -p /dev/hugepages /var/run
mount -t hugetlbfs nodev /dev/hugepages
echo 256 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
echo vfio-pci > /sys/bus/pci/devices/0000:00:02.0/driver_override
echo 0000:00:02.0 > /sys/bus/pci/drivers_probe
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
LOG=/tmp/testpmd.log
: > $LOG
# Each command ends with a new prompt (on the same line when it printed nothing: counted one by one):
# with n commands done the log holds n + 1 prompts.
n=0
prompts() { grep -o 'testpmd>' $LOG 2>/dev/null | wc -l; }
# Commands given together, then waited for: testpmd runs them back to back, so forwarding pauses only
# for as long as they take (testpmd drops what queue 0 received meanwhile when it starts again).
cmd() { for c in "$@"; do echo "$c"; done; n=$((n + $#)); t=0; while [ "$(prompts)" -lt $((n + 1)) ] && [ $t -lt 600 ]; do sleep 0.1; t=$((t+1)); done; }
{
  t=0; while [ "$(prompts)" -lt 1 ] && [ $t -lt 1200 ]; do sleep 0.1; t=$((t+1)); done
  # Every RSS hash to queue 0: the redirection table's 64 entries, 16 to a command (testpmd reads the
  # list as one string token of at most 127 characters: DPDK's STR_TOKEN_SIZE). Queue 0 carries the
  # traffic.
  for first in 0 16 32 48; do
    reta=$(i=$first; while [ $i -lt $((first + 16)) ]; do printf '(%d,0),' $i; i=$((i+1)); done)
    cmd "port config 0 rss reta \${reta%,}"
  done
  cmd "set fwd icmpecho"
  cmd "start"
  echo EMU-E2E-FORWARDING > /dev/console
  sleep 5
  i=0
  while [ $i -lt ${CYCLES} ]; do
    cmd "stop" "port 0 rxq 1 stop" "port 0 txq 1 stop" "port 0 rxq 1 start" "port 0 txq 1 start" "start"
    sleep 1
    i=$((i+1))
  done
  cmd "stop"
  cmd "show port stats 0"
  echo "quit"; t=0; while [ $t -lt 300 ] && ! grep -q '^Bye' $LOG; do sleep 0.1; t=$((t+1)); done
} | timeout -s INT 600 /usr/bin/dpdk-testpmd -l 0-1 -n 1 -a 0000:00:02.0 \\
  -d /${PMDS}/librte_mempool_ring.so.25 \\
  -- -i --rxq=2 --txq=2 --rxd=256 --txd=256 --total-num-mbufs=4096 > $LOG 2>&1
echo "testpmd rc=$?"
cat $LOG
`;

/** Guest L: waits for D's icmpecho, then pings it PINGS times; prints the summary, DUP!s and ICMP counters. */
const PINGER = `${up('10.0.0.2/24')}
t=0; until ping -c 1 -W 1 10.0.0.1 > /dev/null 2>&1 || [ $t -ge 400 ]; do t=$((t+1)); done
grep Icmp: /proc/net/snmp | tail -1 | sed 's/^/before /'
ping -c ${PINGS} -i 0.2 -s 1000 10.0.0.1 > /tmp/ping.txt 2>&1
tail -3 /tmp/ping.txt
echo "dups=$(grep -c DUP /tmp/ping.txt)"
grep Icmp: /proc/net/snmp | tail -1 | sed 's/^/after /'
`;

/** A column of /proc/net/snmp's Icmp: line, by name (the first Icmp: line holds the names). */
function icmp(out: string, when: 'before' | 'after', name: string): number {
  const names =
    'InMsgs InErrors InCsumErrors InDestUnreachs InTimeExcds InParmProbs InSrcQuenchs InRedirects InEchos InEchoReps'.split(
      ' ',
    );
  const line = out.split('\n').find((l) => l.startsWith(`${when} Icmp:`));
  if (!line) throw new Error(`no ${when} ICMP counters in:\n${out}`);
  return Number(line.split(/\s+/)[2 + names.indexOf(name)]);
}

type Queue = { queue: number; direction: string; packets: number; drops: number; errors: number };

describe('DPDK testpmd stops and starts one queue under traffic (emu_iavf, Linux pings through emu)', function () {
  this.timeout(900_000);
  let dir: string;
  let emu: EmuProcess;
  let d: BootGuestResult;
  let l: BootGuestResult;
  /** emu_iavf0's queue counters when testpmd started forwarding, and once both guests are done. */
  let atStart: Promise<Queue[]> | undefined;
  let atEnd: Queue[];

  /** emu_iavf0's queue counters now (`emu ctl --json stats`). */
  async function queuesNow(): Promise<Queue[]> {
    const ctl = [EMU_BIN, 'ctl', '--control', join(dir, 'emu.ctl'), '--json', 'stats', 'emu_iavf0'];
    const { stdout } = await run(process.execPath, ctl);
    return JSON.parse(stdout).devices[0].queues;
  }

  before(async function () {
    this.timeout(1_800_000);
    await ensureGuestEnvironment();
    const tarball = execFileSync('bash', [TARBALL_SCRIPT], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    }).trim();
    dir = mkdtempSync(join(tmpdir(), 'emu-dpdk-queues-'));
    emu = new EmuProcess([
      '--vdev',
      `emu_iavf0,path=${join(dir, 'd.sock')},mac=02:00:00:00:00:0d,queues=2`,
      '--vdev',
      `emu_iavf1,path=${join(dir, 'l.sock')},mac=02:00:00:00:00:0e,queues=1`,
    ]);
    await emu.waitFor(/serving 2 devices/);
    [d, l] = await Promise.all([
      bootGuest({
        sockets: [join(dir, 'd.sock')],
        modules: ['vfio-pci'],
        memoryMiB: 1536,
        cpus: 2,
        files: { '/emu/dpdk.tar': readFileSync(tarball) },
        script: TESTPMD,
        timeoutMs: 800_000,
        // Until testpmd forwards, L's pings that find D's queues not enabled yet are dropped (counted):
        // the counters that matter are those from here on.
        onConsole: (line) => {
          if (line.includes('EMU-E2E-FORWARDING') && !atStart) atStart = queuesNow();
        },
      }),
      bootGuest({ sockets: [join(dir, 'l.sock')], modules: ['iavf'], script: PINGER, timeoutMs: 800_000 }),
    ]);
    atEnd = await queuesNow();
  });

  after(async () => {
    await emu?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers every ping once and intact while queue 1 restarts, and emu logs no error', async () => {
    const explain = () => explainRun({ D: d, L: l }, emu);
    expect(d.exitCode, explain()).to.equal(0);
    expect(l.exitCode, explain()).to.equal(0);
    expect(d.output, 'testpmd ran to its end').to.match(/testpmd rc=0/);
    // A command testpmd could not parse (or an RSS update the PMD refused) is no test of emu.
    expect(d.output, 'testpmd refused a command').to.not.match(
      /Bad arguments|Bad redirection table|Invalid RSS/,
    );
    const restarts = d.output.match(/testpmd> port 0 rxq 1 start/g)?.length ?? 0;
    expect(restarts, `queue 1 restarts\n${d.output.slice(-3000)}`).to.equal(CYCLES);
    const summary = /(\d+) packets transmitted, (\d+) packets received/.exec(l.output);
    expect(summary, l.output).to.not.equal(null);
    const [, sent, received] = summary!.map(Number);
    expect(sent).to.equal(PINGS);
    expect(/dups=(\d+)/.exec(l.output)?.[1], `frames sent twice\n${l.output}`).to.equal('0');
    // emu delivered every ping into queue 0's ring and every reply from it, and from the start of
    // forwarding on it dropped and spoiled nothing: queue 1's restarts cost nothing anywhere...
    expect(atStart, 'testpmd said it forwards').to.not.equal(undefined);
    const start = await atStart!;
    const total = (direction: string, n: number) =>
      atEnd.find((x) => x.direction === direction && x.queue === n)!;
    const since = atEnd.map((x) => {
      const y = start.find((z) => z.direction === x.direction && z.queue === x.queue)!;
      return {
        direction: x.direction,
        queue: x.queue,
        drops: x.drops - y.drops,
        errors: x.errors - y.errors,
      };
    });
    const context = `${JSON.stringify({ start, atEnd })}\n${explain()}`;
    expect(
      since.filter((x) => x.drops + x.errors > 0),
      context,
    ).to.deep.equal([]);
    expect(total('rx', 0).packets, `frames into queue 0 ${context}`).to.be.at.least(PINGS);
    expect(total('tx', 0).packets, `replies out of queue 0 ${context}`).to.be.at.least(received);
    // ...while a ping that reaches queue 0 in the moment forwarding is paused is dropped by testpmd
    // itself when it starts again (flush_fwd_rx_queues): a few go so, one per restart at most.
    expect(received, `pings answered\n${l.output}`).to.be.at.least(PINGS - 15);
    expect(
      icmp(l.output, 'after', 'InCsumErrors') - icmp(l.output, 'before', 'InCsumErrors'),
      'corrupted replies',
    ).to.equal(0);
    const errors = emu.stderr.split('\n').filter((line) => line.startsWith('emu error'));
    expect(errors, explain()).to.deep.equal([]);
  });

  it('exits 0 on SIGTERM afterwards', async () => {
    expect(await emu.stop()).to.equal(0);
  });
});
