import { expect } from 'chai';
import { DEFAULT_CAPABILITIES, encodeCapabilities, parseCapabilities } from './capabilities.js';
import { Errno } from './constants.js';
import { ProtocolError } from './errors.js';

const json = (s: string) => Buffer.from(`${s}\0`);
/** The exact capabilities QEMU 11.1's vfio-user-pci sends (seen from QEMU 11.1.3 on a listening socket). */
const QEMU =
  '{"capabilities": {"pgsizes": 4096, "max_msg_fds": 16, "max_dma_maps": 65535, "max_data_xfer_size": 1048576, ' +
  '"migration": {"max_bitmap_size": 268435456, "pgsize": 4096}, "write_multiple": true}}';

function rejects(tail: Buffer, text: string): void {
  try {
    parseCapabilities(tail);
  } catch (err) {
    expect(err).to.be.instanceOf(ProtocolError);
    expect((err as ProtocolError).errno).to.equal(Errno.EINVAL);
    expect((err as Error).message).to.contain(text);
    return;
  }
  expect.fail(`accepted ${tail.toString()}`);
}

describe('VERSION capabilities', () => {
  it("parses QEMU's capabilities", () => {
    const { caps, unknown } = parseCapabilities(json(QEMU));
    expect(caps).to.deep.equal({
      maxMsgFds: 16,
      maxDataXferSize: 1048576,
      maxDmaMaps: 65535,
      pgsizes: 4096,
      writeMultiple: true,
      migration: { pgsize: 4096, maxBitmapSize: 268435456 },
    });
    expect(unknown).to.deep.equal([]);
  });

  it('gives the defaults for no JSON, {} and an empty capabilities object', () => {
    for (const tail of [Buffer.alloc(0), json('{}'), json('{"capabilities":{}}')]) {
      expect(parseCapabilities(tail).caps).to.deep.equal(DEFAULT_CAPABILITIES);
    }
  });

  it('reports unknown keys instead of failing', () => {
    expect(parseCapabilities(json('{"capabilities":{"shiny":1}}')).unknown).to.deep.equal(['shiny']);
  });

  it('rejects malformed JSON the way libvfio-user does', () => {
    rejects(Buffer.from('{"capabilities":{}}'), 'not NUL-terminated');
    rejects(json('{"capabilities":{}'), 'malformed JSON');
    rejects(json('{"capabilities:{}}'), 'malformed JSON');
    rejects(json('[]'), 'not an object');
    rejects(json('{"capabilities":3}'), '"capabilities" is not an object');
    rejects(json('{"capabilities":{"max_msg_fds":"foo"}}'), '"max_msg_fds" must be a non-negative integer');
    rejects(json('{"capabilities":{"max_msg_fds":-1}}'), '"max_msg_fds" must be a non-negative integer');
    rejects(json('{"capabilities":{"max_msg_fds":1025}}'), 'above the limit 1024');
    rejects(json('{"capabilities":{"migration":1}}'), '"migration" is not an object');
    rejects(json('{"capabilities":{"migration":{"pgsize":"foo"}}}'), 'must be a non-negative integer');
    rejects(json('{"capabilities":{"migration":{"pgsize":4095}}}'), 'not a multiple of 4096');
    rejects(json('{"capabilities":{"pgsizes":4095}}'), 'not a multiple of 4096');
    rejects(json('{"capabilities":{"write_multiple":1}}'), 'must be a boolean');
  });

  it('encodes a short NUL-terminated reply that parses back', () => {
    const tail = encodeCapabilities({
      maxMsgFds: 16,
      maxDataXferSize: 1 << 20,
      pgsizes: 4096,
      maxDmaMaps: 65535,
      writeMultiple: true,
    });
    expect(tail[tail.length - 1]).to.equal(0);
    // QEMU drops replies bigger than its ~214-byte request buffer.
    expect(tail.length + 4).to.be.below(214 - 16);
    expect(parseCapabilities(tail).caps).to.include({ maxMsgFds: 16, writeMultiple: true });
  });
});
