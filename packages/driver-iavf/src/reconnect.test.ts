/**
 * A new client on the socket (a new QEMU after the old one died) maps its own RAM, often at the very
 * IOVAs the old guest's rings and buffers were at. Nothing of the old setup may write into it: the
 * device stops its DMA when the client goes, and starts again only once the new guest sets it up.
 */
import { createHash } from 'node:crypto';
import { silentLogger, VfioUserClient } from '@emu/vfio-user';
import { expect } from 'chai';
import { until } from './testing/escapes.js';
import { rawFrame } from './testing/frames.js';
import { GuestRam } from './testing/guest-memory.js';
import { Harness } from './testing/harness.js';
import { sleep } from './testing/soft-iavf/io.js';
import { SoftIavf } from './testing/soft-iavf/main.js';

const VF_MAC = '02:00:00:00:00:0a';
const PEER = '02:00:00:00:00:99';
const digest = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

describe('a second client after the first went away', () => {
  let h: Harness | undefined;
  const extra: Array<() => void> = [];
  afterEach(async () => {
    for (const undo of extra.splice(0)) undo();
    await h?.close();
    h = undefined;
  });

  it('finds its fresh RAM at the old IOVAs untouched until its guest sets the device up, then traffic flows', async () => {
    const { h: harness, net, vf } = await Harness.linked({ mac: VF_MAC, queues: 2 });
    h = harness;
    net.inject(rawFrame(VF_MAC, PEER, 200, 1));
    expect(await vf.waitFrames(0, 1)).to.have.length(1);

    // The first client goes without a word (QEMU killed): rings enabled, buffers posted, tails set.
    h.client.close();
    await until(() => !h!.dev.info().socket.connected, 2000);

    // The next one maps different RAM at the same IOVAs, filled with a pattern of its own.
    const client = await VfioUserClient.connect(h.dev.path, { logger: silentLogger });
    const ram = GuestRam.shared(32);
    extra.push(() => {
      client.close();
      ram.close();
    });
    ram.fill(ram.base, ram.size, 0xa5);
    const fresh = digest(ram.bytes);
    await ram.attach(client);
    // Frames from the network, link events from the operator, and even Bus Master Enable set again
    // (the new guest's pci_set_master comes before its driver resets the VF): nothing lands.
    const soft = new SoftIavf(client, ram);
    extra.push(() => soft.close());
    await soft.probe();
    for (let i = 0; i < 50; i++) net.inject(rawFrame(VF_MAC, PEER, 300, i));
    h.dev.setAttr('link', false);
    h.dev.setAttr('link', true);
    await sleep(50);
    expect(digest(ram.bytes), 'a byte of the new RAM changed').to.equal(fresh);
    expect(h.device.resets.disconnect).to.equal(1);

    // Once the new guest brings the VF up, the device works in the new RAM.
    await soft.bringUp();
    net.inject(rawFrame(VF_MAC, PEER, 128, 7));
    const [got] = await soft.waitFrames(0, 1);
    expect(got.data.length).to.equal(128);
  });

  it('honours Bus Master Enable: TX descriptors posted while it is clear wait, and go out once it is set', async () => {
    const { h: harness, net, vf } = await Harness.linked({ mac: VF_MAC });
    h = harness;
    await h.client.setBusMaster(false);
    const frame = rawFrame(PEER, VF_MAC, 100, 5);
    await vf.transmit(frame);
    net.inject(rawFrame(VF_MAC, PEER, 100, 6));
    expect(await net.quietFor(50), 'frames sent without bus mastering').to.equal(0);
    expect(h.device.dataPath.rx[0].drops, 'the frame from the network').to.equal(1);
    await h.client.setBusMaster(true);
    const [sent] = await net.waitSent(1);
    expect(Buffer.from(sent).equals(frame)).to.equal(true);
    expect(await vf.waitTxDone(0)).to.equal(1);
  });
});
