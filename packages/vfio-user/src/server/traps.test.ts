import { vfioUserWire } from '@emu/native';
import { expect } from 'chai';
import { VfioUserClient } from '../client/client.js';
import { Command, HEADER_SIZE, HeaderFlag } from '../protocol/constants.js';
import { RegionAccess, Version } from '../protocol/messages.js';
import { RawPeer } from './raw-peer.fixture.js';
import { serverPerTest } from './test-device.fixture.js';

describe('register traps answered by the socket thread', () => {
  const t = serverPerTest();
  let client: VfioUserClient;
  afterEach(() => client?.close());

  it('uses the wire facts @emu/vfio-user defines', () => {
    expect(vfioUserWire).to.deep.equal({
      headerSize: HEADER_SIZE,
      regionRead: Command.REGION_READ,
      regionWrite: Command.REGION_WRITE,
      typeMask: HeaderFlag.TYPE_MASK,
      typeCommand: HeaderFlag.TYPE_COMMAND,
      typeReply: HeaderFlag.TYPE_REPLY,
      noReply: HeaderFlag.NO_REPLY,
      regionAccessSize: RegionAccess.size,
    });
  });

  it('answers accesses inside mmap-able areas from their memory, without the region handlers', async () => {
    const server = t.serve();
    const bar2 = Buffer.from(t.dev.bar2.buffer);
    const handled: string[] = [];
    const region = t.dev.spec.regions![2]!;
    const { read, write } = region;
    region.read = (o, n) => {
      handled.push(`read ${o.toString(16)}`);
      return read!(o, n);
    };
    region.write = (o, d) => {
      handled.push(`write ${o.toString(16)}`);
      write!(o, d);
    };
    client = await VfioUserClient.connect(server.path);
    bar2.writeUInt32LE(0x12345678, 0x1004);
    expect((await client.regionRead(2, 0x1004, 4)).readUInt32LE(0)).to.equal(0x12345678);
    await client.regionWrite(2, 0x3ff8, Buffer.from('0102030405060708', 'hex'));
    expect(bar2.subarray(0x3ff8, 0x4000).toString('hex')).to.equal('0102030405060708');
    await client.regionWrite(2, 0x2000, Buffer.from([9, 9]), { posted: true });
    expect([...(await client.regionRead(2, 0x2000, 2))]).to.deep.equal([9, 9]);
    expect(handled, 'no handler ran').to.deep.equal([]);
    // Outside the areas, wider than 8 bytes, or misaligned: the handlers, as always.
    await client.regionRead(2, 0x0ffc, 4);
    await client.regionRead(2, 0x1000, 16);
    await client.regionWrite(2, 0x1001, Buffer.from([1, 2]));
    expect(handled).to.deep.equal(['read ffc', 'read 1000', 'write 1001']);
    const stats = server.stats;
    expect(stats.trapped).to.equal(4);
    expect(stats.commands.REGION_READ).to.equal(4);
    expect(stats.commands.REGION_WRITE).to.equal(3);
  });

  it('leaves config space and trapped BARs to JavaScript', async () => {
    const server = t.serve();
    client = await VfioUserClient.connect(server.path);
    await client.regionRead(7, 0, 4);
    await client.regionWrite(0, 0x20, Buffer.from([1, 2, 3, 4]));
    expect(t.dev.writes.map((w) => w.offset)).to.deep.equal([0x20]);
    expect(server.stats.trapped).to.equal(0);
  });

  it('serves a new client from the same memory after the first one went away', async () => {
    const server = t.serve();
    client = await VfioUserClient.connect(server.path);
    await client.regionWrite(2, 0x1010, Buffer.from([7, 7, 7, 7]));
    client.close();
    await new Promise((r) => setTimeout(r, 20));
    client = await VfioUserClient.connect(server.path);
    expect([...(await client.regionRead(2, 0x1010, 4))]).to.deep.equal([7, 7, 7, 7]);
    expect(server.stats.trapped).to.equal(2);
  });

  it('takes a client that connects right after the last one hung up', async () => {
    const server = t.serve();
    for (let i = 0; i < 20; i++) {
      const p = new RawPeer(server.path);
      p.send(1, Command.VERSION, Version.encode({ major: 0, minor: 0 }));
      expect((await p.next()).header.error).to.equal(0);
      p.close();
    }
    expect(server.stats.connections).to.equal(20);
  });
});
