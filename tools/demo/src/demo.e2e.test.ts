/** `pnpm demo --short`, as a user runs it: exit 0, the summary, a live stats line per second. */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

describe('pnpm demo --short', () => {
  it('starts emu, boots two guests that ping and move a file through it, shows stats and a summary, cleans up', async () => {
    const bin = fileURLToPath(new URL('../bin/emu-demo.js', import.meta.url));
    const child = spawn(process.execPath, [bin, '--short'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    const code = await new Promise((r) => child.once('exit', r));
    expect(code, out).to.equal(0);
    expect(out).to.match(/^starting: emu --vdev emu_iavf0,path=\S+\/a\.sock/m);
    expect(out, out).to.match(
      /^ {2}ping B → A: {3}5 packets transmitted, 5 packets received, 0% packet loss$/m,
    );
    expect(out, out).to.match(/^ {2}TCP B → A: {4}1048576 bytes sent, 1048576 received, md5 matches$/m);
    expect(out, out).to.match(
      /^ {2}emu_iavf0: {4}rx \d+ pkts \d+ B, tx \d+ pkts \d+ B, irqs \d+; path data plane$/m,
    );
    // The live view: each second a line with both NICs' rates (stdout is a pipe here).
    const live = out.match(
      /^ {2}emu_iavf0 rx \S+ pps \S+ bit\/s, tx \S+ pps \S+ bit\/s, \S+ irq\/s {2}\| {2}emu_iavf1 rx /gm,
    );
    expect(live?.length ?? 0, out).to.be.at.least(3);
    // Traffic shows in the rates while it runs.
    expect(out, out).to.match(/^ {2}emu_iavf0 rx [1-9]/m);
    expect(out).to.match(/^ {2}OK in \d+ s$/m);
    // Its temporary directory (sockets, control socket) is gone with emu.
    const dir = /path=(\S+)\/a\.sock/.exec(out)![1];
    expect(existsSync(dir)).to.equal(false);
  });
});
