/**
 * Operating emu while a real guest uses it: `emu ctl link emu_iavf0 down` (then up) on the running emu,
 * and Linux 6.12's iavf in the guest sees the carrier go and come back ("NIC Link is Down" in dmesg);
 * `emu stats --once` and the Prometheus endpoint read the same running process. Needs root; `pnpm e2e`.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type BootGuestResult, bootGuest, ensureGuestEnvironment, up } from '@emu/guest';
import { expect } from 'chai';
import { EMU_BIN, EmuProcess } from './emu-process.js';

const run = promisify(execFile);

/** The guest reports how long the carrier took to go down, then to come back (tenths of a second). */
const SCRIPT = `
${up('10.0.9.1/24')}
t=0; while [ "$(cat /sys/class/net/eth0/carrier)" = 1 ] && [ $t -lt 1200 ]; do sleep 0.1; t=$((t+1)); done
echo "down carrier=$(cat /sys/class/net/eth0/carrier) operstate=$(cat /sys/class/net/eth0/operstate) waited_ds=$t"
t=0; while [ "$(cat /sys/class/net/eth0/carrier)" != 1 ] && [ $t -lt 1200 ]; do sleep 0.1; t=$((t+1)); done
echo "back carrier=$(cat /sys/class/net/eth0/carrier) operstate=$(cat /sys/class/net/eth0/operstate) waited_ds=$t"
echo "--- dmesg"
dmesg | grep -i iavf
`;

describe('operating a running emu: emu ctl, emu stats and metrics against a Linux guest', function () {
  this.timeout(600_000);
  let dir: string;
  let emu: EmuProcess;
  let result: BootGuestResult;
  let steps: string[] = [];
  let statsView = '';
  let scraped = '';

  const ctl = async (...args: string[]) =>
    (await run(process.execPath, [EMU_BIN, 'ctl', '--control', join(dir, 'emu.ctl'), ...args])).stdout;

  before(async function () {
    this.timeout(1_200_000);
    await ensureGuestEnvironment();
    dir = mkdtempSync(join(tmpdir(), 'emu-control-e2e-'));
    emu = new EmuProcess([
      '--vdev',
      `emu_iavf0,path=${join(dir, 'n0.sock')},net=ctl-e2e`,
      '--metrics',
      '127.0.0.1:0',
    ]);
    await emu.waitFor(/serving/);
    const metricsUrl = (await emu.waitFor(/metrics: (http:\S+)/))[1];
    const guest = bootGuest({
      sockets: [join(dir, 'n0.sock')],
      modules: ['iavf'],
      script: SCRIPT,
      timeoutMs: 500_000,
    });
    // The guest opened the interface (the VF enabled its queues): take the link away, give it back.
    const enabled = async () => {
      const stats = JSON.parse(await ctl('--json', 'get', 'emu_iavf0', 'stats'));
      return (stats.virtchnl.messages.ENABLE_QUEUES ?? 0) > 0;
    };
    const end = Date.now() + 400_000;
    while (!(await enabled()) && Date.now() < end) await new Promise((r) => setTimeout(r, 500));
    await new Promise((r) => setTimeout(r, 3000));
    steps.push(await ctl('link', 'emu_iavf0', 'down'));
    steps.push(await ctl('list'));
    statsView = (await run(process.execPath, [EMU_BIN, 'stats', '--once', '--control', join(dir, 'emu.ctl')]))
      .stdout;
    scraped = await (await fetch(metricsUrl)).text();
    await new Promise((r) => setTimeout(r, 5000));
    steps.push(await ctl('link', 'emu_iavf0', 'up'));
    result = await guest;
  });

  after(async () => {
    await emu?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    steps = [];
  });

  const explain = () =>
    `exit ${result.exitCode}\n--- output ---\n${result.output}\n--- emu ctl ---\n${steps.join('')}\n--- emu ---\n${emu.stdout}${emu.stderr}\n--- console tail ---\n${result.console.slice(-2000)}`;

  it('the guest sees its carrier go down and come back, as emu ctl set it', () => {
    expect(result.exitCode, explain()).to.equal(0);
    expect(steps[0]).to.equal('emu_iavf0: link down\n');
    expect(steps[1]).to.match(/emu_iavf0 +emu_iavf +started +yes +down /);
    expect(steps[2]).to.equal('emu_iavf0: link up\n');
    expect(result.output, explain()).to.match(/^carrier=1$/m);
    expect(result.output, explain()).to.match(/^down carrier=0 operstate=down waited_ds=\d+$/m);
    expect(result.output, explain()).to.match(/^back carrier=1 operstate=up waited_ds=\d+$/m);
    const dmesg = result.output.slice(result.output.indexOf('--- dmesg'));
    expect(dmesg, explain()).to.include('NIC Link is Down');
    expect(dmesg.lastIndexOf('NIC Link is Up'), explain()).to.be.greaterThan(
      dmesg.indexOf('NIC Link is Down'),
    );
  });

  it('emu stats --once and the metrics endpoint read the running emu', () => {
    expect(statsView, statsView).to.match(/^emu stats /);
    expect(statsView, statsView).to.match(/\nemu_iavf0 +down +yes /);
    expect(statsView, statsView).to.match(/\n +q0 /);
    expect(scraped).to.match(/^emu_link_up\{device="emu_iavf0"\} 0$/m);
    expect(scraped).to.match(/^emu_device_connected\{device="emu_iavf0"\} 1$/m);
    const messages = Number(/^emu_vfio_user_messages_total\{device="emu_iavf0"\} (\d+)$/m.exec(scraped)?.[1]);
    expect(messages).to.be.greaterThan(50);
  });

  it('exits cleanly, with nothing logged', async () => {
    expect(await emu.stop()).to.equal(0);
    expect(emu.stderr, emu.stderr).to.equal('');
  });
});
