/**
 * Seed inputs for the native `ring` fuzz target (native/fuzz/ring_fuzzer.cc), written into
 * native/fuzz/corpus/ring as seed-NAME: rings the way Linux's iavf fills them (iavf_tx_map, iavf_tso,
 * iavf_tx_enable_csum, iavf_alloc_rx_buffers), built with the test driver's own frames and descriptor
 * encoders, so the fuzzer starts from packets that pass every check and reach TSO, the checksum
 * offloads, VLAN insertion and every shape of RX write-back, and mutates from there. Run it after
 * changing the fuzzer's input layout: `node --import tsx packages/driver-iavf/fuzz/ring-seeds.ts`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  IPPROTO_TCP,
  IPPROTO_UDP,
  ipv4Frame,
  ipv4SctpFrame,
  ipv6Frame,
  tcpSegment,
  udpDatagram,
} from '../src/testing/frames.js';
import { TX_CMD, TX_CTX, TX_OFFSET } from '../src/testing/iavf-defs.js';
import { txContextQw1, txDataQw1, txHeaderLengths } from '../src/testing/soft-iavf/descriptors.js';

const OUT = join(dirname(fileURLToPath(import.meta.url)), '../../../native/fuzz/corpus/ring');
/** Guest memory starts at this IOVA in the fuzzer (kBase) and is this large. */
const BASE = 0x10000n;
const MEMORY = 64 * 1024;

const HOSTS = { dstMac: '02:00:00:00:00:01', srcMac: '02:00:00:00:00:02' };
const V4 = { ...HOSTS, srcIp: '10.0.0.1', dstIp: '10.0.0.2' };
const V6 = { ...HOSTS, srcIp: 'fd00::1', dstIp: 'fd00::2' };
const SPORT = 5000;
const DPORT = 5001;

const payload = (n: number) => Uint8Array.from({ length: n }, (_, i) => i & 0xff);

interface FrameOptions {
  ipv6?: boolean;
  l4?: 'tcp' | 'udp' | 'sctp';
  payload: number;
  vlan?: number;
}

/** An Ethernet (802.1Q-tagged with `vlan`) IPv4 or IPv6 frame of TCP, UDP or SCTP. */
function frame({ ipv6 = false, l4 = 'tcp', payload: n, vlan }: FrameOptions): Buffer {
  const data = payload(n);
  let f: Buffer;
  if (l4 === 'sctp') {
    if (ipv6) throw new Error('SCTP seeds are IPv4');
    f = ipv4SctpFrame({ ...V4, sport: SPORT, dport: DPORT, payload: data });
  } else {
    const [proto, body, checksumAt] =
      l4 === 'tcp'
        ? [IPPROTO_TCP, tcpSegment(SPORT, DPORT, data), 16]
        : [IPPROTO_UDP, udpDatagram(SPORT, DPORT, data), 6];
    f = ipv6 ? ipv6Frame(V6, proto, body, checksumAt) : ipv4Frame(V4, proto, body, checksumAt);
  }
  if (vlan === undefined) return f;
  return Buffer.concat([
    f.subarray(0, 12),
    Buffer.from([0x81, 0x00, vlan >> 8, vlan & 0xff]),
    f.subarray(12),
  ]);
}

/** The fuzzer's input: a 16-byte header of ring and pass parameters, then guest memory from BASE on. */
class Input {
  readonly header = new Uint8Array(16);
  readonly memory = new Uint8Array(MEMORY);
  private used = 0;

  /** `kind` 0: TX walk, 1: RX write, 2: offloads on a raw frame. */
  constructor(kind: 0 | 1 | 2) {
    this.header[0] = kind;
  }
  /** The ring: `len` descriptors at the start of guest memory (header byte 2 = 0), head and tail. */
  ring(len: number, head: number, tail: number): void {
    this.header[1] = len - 1;
    this.header[2] = 0;
    this.header[4] = head;
    this.header[6] = tail;
  }
  put(at: number, bytes: Uint8Array): void {
    this.memory.set(bytes, at);
    this.used = Math.max(this.used, at + bytes.length);
  }
  desc(index: number, qw0: bigint, qw1: bigint, size = 16): void {
    const d = new DataView(this.memory.buffer, index * size, 16);
    d.setBigUint64(0, qw0, true);
    d.setBigUint64(8, qw1, true);
    this.used = Math.max(this.used, index * size + 16);
  }
  bytes(): Uint8Array {
    const all = new Uint8Array(16 + this.used);
    all.set(this.header);
    all.set(this.memory.subarray(0, this.used), 16);
    return all;
  }
}

interface TxOptions {
  frameOptions: FrameOptions;
  cmd: number;
  mss?: number;
  cuts?: number;
  l2tag1?: number;
}

/** A TX ring of one packet: an optional TSO context descriptor, then the frame cut into `cuts` buffers. */
function tx({ frameOptions, cmd, mss, cuts = 1, l2tag1 = 0 }: TxOptions): Uint8Array {
  const f = frame(frameOptions);
  const { macLen, ipLen, l4Len } = txHeaderLengths(f);
  const offset =
    ((macLen / 2) << TX_OFFSET.MACLEN_SHIFT) |
    ((ipLen / 4) << TX_OFFSET.IPLEN_SHIFT) |
    ((l4Len / 4) << TX_OFFSET.L4LEN_SHIFT);
  const input = new Input(0);
  const descriptors: [bigint, bigint][] = [];
  const hdr = macLen + ipLen + l4Len;
  if (mss !== undefined) descriptors.push([0n, txContextQw1(TX_CTX.CMD_TSO, f.length - hdr, mss)]);
  // Buffers from 0x1000 on, each cut as iavf_tx_map cuts a frag list (the header alone first under TSO).
  const bounds = [0];
  if (mss !== undefined) bounds.push(hdr);
  for (let i = 1; i < cuts; i++) bounds.push(hdr + Math.floor(((f.length - hdr) * i) / cuts));
  bounds.push(f.length);
  let at = 0x1000;
  for (let i = 0; i + 1 < bounds.length; i++) {
    const part = f.subarray(bounds[i], bounds[i + 1]);
    input.put(at, part);
    const last = i + 2 === bounds.length ? TX_CMD.EOP | TX_CMD.RS : 0;
    descriptors.push([BASE + BigInt(at), txDataQw1(cmd | last, part.length, offset, l2tag1)]);
    at += (part.length + 63) & ~63;
  }
  for (const [i, [qw0, qw1]] of descriptors.entries()) input.desc(i, qw0, qw1);
  input.ring(Math.max(8, descriptors.length + 1), 0, descriptors.length);
  input.header[8] = 63; // 64 frames a pass
  input.header[9] = 0xff; // and (0xffff + 1) * 16 bytes
  input.header[10] = 0xff;
  return input.bytes();
}

interface RxOptions {
  desc32: boolean;
  posted: number;
  buffer?: number;
  length: number;
  hash: boolean;
  tag: boolean;
}

/** An RX ring with `posted` buffers of `buffer` bytes from 0x1000 on; the frame is the input's first `length` bytes. */
function rx({ desc32, posted, buffer = 2048, length, hash, tag }: RxOptions): Uint8Array {
  const input = new Input(1);
  const size = desc32 ? 32 : 16;
  for (let i = 0; i < posted; i++) input.desc(i, BASE + BigInt(0x1000 + i * buffer), 0n, size);
  input.ring(16, 0, posted);
  input.header[8] = buffer / 128 - 1;
  input.header[9] = (1522 - 64) & 0xff; // max frame 1522
  input.header[10] = (1522 - 64) >> 8;
  input.header[11] = desc32 ? 1 : 0;
  input.header[12] = length & 0xff;
  input.header[13] = length >> 8;
  input.header[14] = (hash ? 1 : 0) | (tag ? 2 : 0);
  input.put(0x1000 + posted * buffer, new Uint8Array(64)); // the frame's bytes come from the input
  return input.bytes();
}

function raw(frameOptions: FrameOptions): Uint8Array {
  const input = new Input(2);
  input.put(0, frame(frameOptions));
  return input.bytes();
}

const { IIPT_IPV4_CSUM: V4CSUM, IIPT_IPV6, L4T_TCP, L4T_UDP, L4T_SCTP, IL2TAG1 } = TX_CMD;
const seeds: Record<string, Uint8Array> = {
  'tx-tcp4-csum': tx({ frameOptions: { payload: 200 }, cmd: V4CSUM | L4T_TCP }),
  'tx-udp4-csum': tx({ frameOptions: { l4: 'udp', payload: 300 }, cmd: V4CSUM | L4T_UDP, cuts: 3 }),
  'tx-sctp4-crc': tx({ frameOptions: { l4: 'sctp', payload: 120 }, cmd: V4CSUM | L4T_SCTP }),
  'tx-tcp6-csum': tx({ frameOptions: { ipv6: true, payload: 90 }, cmd: IIPT_IPV6 | L4T_TCP }),
  'tx-tcp4-tso': tx({ frameOptions: { payload: 4000 }, cmd: V4CSUM | L4T_TCP, mss: 1448, cuts: 3 }),
  'tx-tcp6-tso': tx({
    frameOptions: { ipv6: true, payload: 3000 },
    cmd: IIPT_IPV6 | L4T_TCP,
    mss: 536,
    cuts: 2,
  }),
  'tx-tcp4-tso-vlan': tx({
    frameOptions: { payload: 2500 },
    cmd: V4CSUM | L4T_TCP | IL2TAG1,
    mss: 1000,
    l2tag1: 100,
  }),
  'tx-udp4-vlan-frame': tx({ frameOptions: { l4: 'udp', payload: 64, vlan: 200 }, cmd: V4CSUM | L4T_UDP }),
  'rx-16-one': rx({ desc32: false, posted: 4, length: 60, hash: false, tag: false }),
  'rx-32-split-hash-tag': rx({ desc32: true, posted: 6, buffer: 512, length: 1500, hash: true, tag: true }),
  'raw-tcp4': raw({ payload: 40 }),
  'raw-udp6': raw({ ipv6: true, l4: 'udp', payload: 40 }),
  'raw-sctp4-vlan': raw({ l4: 'sctp', payload: 40, vlan: 7 }),
};
mkdirSync(OUT, { recursive: true });
for (const [name, bytes] of Object.entries(seeds)) writeFileSync(join(OUT, `seed-${name}`), bytes);
console.log(`ring-seeds: ${Object.keys(seeds).length} seeds in ${OUT}`);
