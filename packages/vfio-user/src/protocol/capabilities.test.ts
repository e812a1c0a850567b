import { expect } from 'chai';
import {
  CAPABILITY_RULES,
  DEFAULT_CAPABILITIES,
  encodeCapabilities,
  MAX_CAPABILITIES_BYTES,
  parseCapabilities,
} from './capabilities.js';
import { Errno, MAX_DATA_XFER_SIZE, MIN_DATA_XFER_SIZE, SCM_MAX_FD } from './constants.js';
import { ProtocolError } from './errors.js';

const json = (s: string) => Buffer.from(`${s}\0`);
const caps = (body: string) => json(`{"capabilities":{${body}}}`);
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
    const { caps: c, unknown } = parseCapabilities(json(QEMU));
    expect(c).to.deep.equal({
      maxMsgFds: 16,
      maxDataXferSize: 1048576,
      maxDmaMaps: 65535,
      pgsizes: 4096n,
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

  it('ignores and reports unknown keys, at any depth, a bounded number of them cut short', () => {
    expect(parseCapabilities(caps('"shiny":1,"migration":{"extra":[1]}')).unknown).to.deep.equal([
      'capabilities.shiny',
      'capabilities.migration.extra',
    ]);
    const many = Array.from({ length: 20 }, (_, i) => `"${'k'.repeat(100)}${i}":0`).join(',');
    const { unknown } = parseCapabilities(caps(many));
    expect(unknown).to.have.length(8);
    for (const k of unknown) expect(k.length).to.be.at.most(64);
  });

  it('refuses what a lenient parser would read one way and a C peer another', () => {
    rejects(Buffer.from('{"capabilities":{}}'), 'not NUL-terminated');
    rejects(json('{"capabilities":{}'), 'malformed JSON');
    rejects(json('{"capabilities":{},}'), 'malformed JSON');
    rejects(json('{"capabilities":{} /* c */}'), 'malformed JSON');
    rejects(json(''), 'malformed JSON');
    rejects(json('[]'), 'not an object');
    rejects(Buffer.from([0x7b, 0xff, 0x7d, 0]), 'not UTF-8');
    rejects(Buffer.from('{"capabilities":{}}\0x\0'), 'malformed JSON');
    rejects(json(`{"pad":"${'x'.repeat(MAX_CAPABILITIES_BYTES)}"}`), `more than ${MAX_CAPABILITIES_BYTES}`);
    rejects(json('{"capabilities":{},"capabilities":{}}'), '"capabilities" appears twice');
    rejects(caps('"max_msg_fds":1,"max_msg_fds":16'), '"capabilities.max_msg_fds" appears twice');
    rejects(caps('"migration":{"pgsize":4096,"pgsize":8192}'), 'migration.pgsize" appears twice');
    rejects(caps('"shiny":1,"shiny":2'), '"capabilities.shiny" appears twice');
  });

  describe('each capability of the table: wrong types, 0, tiny and huge values', () => {
    const wrongTypes = ['"16"', 'null', '[]', '{}', '-1', '1.5', '1e3', '16.0', 'true'];
    for (const [name, rule] of Object.entries(CAPABILITY_RULES)) {
      it(name, () => {
        if (rule.type === 'uint') {
          for (const v of wrongTypes) rejects(caps(`"${name}":${v}`), 'must be a non-negative integer');
          rejects(caps(`"${name}":18446744073709551616`), 'above 2^64 - 1');
        } else if (rule.type === 'boolean') {
          for (const v of ['1', '0', '"true"', 'null']) rejects(caps(`"${name}":${v}`), 'must be a boolean');
        } else {
          for (const v of ['1', '"x"', 'null', '[]']) rejects(caps(`"${name}":${v}`), 'is not an object');
        }
      });
    }

    it('max_msg_fds: 0 is taken (no fds), a huge value is clamped to what one sendmsg passes', () => {
      expect(parseCapabilities(caps('"max_msg_fds":0')).caps.maxMsgFds).to.equal(0);
      expect(parseCapabilities(caps('"max_msg_fds":4294967296')).caps.maxMsgFds).to.equal(SCM_MAX_FD);
    });

    it('max_data_xfer_size: below the minimum refused (0 and tiny), huge clamped', () => {
      rejects(caps('"max_data_xfer_size":0'), `below the minimum ${MIN_DATA_XFER_SIZE}`);
      rejects(caps('"max_data_xfer_size":1'), `below the minimum ${MIN_DATA_XFER_SIZE}`);
      rejects(caps(`"max_data_xfer_size":${MIN_DATA_XFER_SIZE - 1}`), 'below the minimum');
      expect(
        parseCapabilities(caps(`"max_data_xfer_size":${MIN_DATA_XFER_SIZE}`)).caps.maxDataXferSize,
      ).to.equal(MIN_DATA_XFER_SIZE);
      const huge = parseCapabilities(caps('"max_data_xfer_size":18446744073709551615')).caps;
      expect(huge.maxDataXferSize).to.equal(MAX_DATA_XFER_SIZE);
    });

    it('max_dma_maps: 0 taken, huge clamped to a safe integer', () => {
      expect(parseCapabilities(caps('"max_dma_maps":0')).caps.maxDmaMaps).to.equal(0);
      expect(parseCapabilities(caps('"max_dma_maps":18446744073709551615')).caps.maxDmaMaps).to.equal(
        Number.MAX_SAFE_INTEGER,
      );
    });

    it('pgsizes: a u64 mask read exactly; it must hold a page size of 4 KiB or more and none below', () => {
      expect(parseCapabilities(caps('"pgsizes":18446744073709547520')).caps.pgsizes).to.equal(
        0xfffffffffffff000n,
      );
      expect(parseCapabilities(caps('"pgsizes":2097152')).caps.pgsizes).to.equal(0x200000n);
      rejects(caps('"pgsizes":0'), 'no page size of 4 KiB');
      rejects(caps('"pgsizes":4095'), 'no page size of 4 KiB');
      rejects(caps('"pgsizes":6144'), 'no page size of 4 KiB');
      rejects(caps('"migration":{"pgsize":512}'), 'no page size of 4 KiB');
    });

    it('twin_socket: validated and reported, fd_index an integer', () => {
      expect(parseCapabilities(caps('"twin_socket":{"supported":true}')).caps.twinSocket).to.equal(true);
      rejects(caps('"twin_socket":{"supported":1}'), 'must be a boolean');
      rejects(caps('"twin_socket":{"fd_index":-1}'), 'must be a non-negative integer');
    });
  });

  it('encodes a short NUL-terminated reply that parses back', () => {
    const tail = encodeCapabilities({
      maxMsgFds: 16,
      maxDataXferSize: 1 << 20,
      pgsizes: 4096n,
      maxDmaMaps: 65535,
      writeMultiple: true,
    });
    expect(tail[tail.length - 1]).to.equal(0);
    // QEMU drops replies bigger than its ~214-byte request buffer.
    expect(tail.length + 4).to.be.below(214 - 16);
    expect(parseCapabilities(tail).caps).to.include({ maxMsgFds: 16, writeMultiple: true, pgsizes: 4096n });
    expect(tail.toString()).to.contain('"pgsizes":4096');
  });
});
