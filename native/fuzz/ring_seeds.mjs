#!/usr/bin/env node
// Seed inputs for the ring fuzzer (ring_fuzzer.cc), written into fuzz/corpus/ring as seed-NAME: rings
// the way Linux's iavf fills them (iavf_tx_map, iavf_tso, iavf_tx_enable_csum, iavf_alloc_rx_buffers),
// so the fuzzer starts from packets that pass every check and reach TSO, the checksum offloads, VLAN
// insertion and the RX write-back's every shape, and mutates from there. Run it after changing the
// input's layout: `node fuzz/ring_seeds.mjs` (from native/).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const out = join(dirname(fileURLToPath(import.meta.url)), 'corpus/ring');
const BASE = 0x10000n; // guest memory starts at this IOVA (kBase)
const MEMORY = 64 * 1024;

// Descriptor fields (Linux 6.12 drivers/net/ethernet/intel/iavf/iavf_type.h).
const DTYPE_CONTEXT = 0x1n;
const CMD_EOP = 0x001n;
const CMD_RS = 0x002n;
const CMD_IL2TAG1 = 0x008n;
const CMD_IIPT_IPV4_CSUM = 0x060n;
const CMD_IIPT_IPV6 = 0x020n;
const CMD_L4T_TCP = 0x100n;
const CMD_L4T_SCTP = 0x200n;
const CMD_L4T_UDP = 0x300n;
const CTX_CMD_TSO = 0x1n;

/** Ethernet (+ VLAN) + IPv4/IPv6 + TCP/UDP/SCTP headers and `payload` bytes, checksums left to the device. */
function frame({ ipv6 = false, l4 = 'tcp', payload = 100, vlan }) {
  const eth = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
  if (vlan !== undefined) eth.push(0x81, 0x00, vlan >> 8, vlan & 0xff);
  eth.push(...(ipv6 ? [0x86, 0xdd] : [0x08, 0x00]));
  const proto = { tcp: 6, udp: 17, sctp: 132 }[l4];
  const l4len = { tcp: 20, udp: 8, sctp: 12 }[l4];
  const ipPayload = l4len + payload;
  const ip = ipv6
    ? [
        0x60,
        0,
        0,
        0,
        ipPayload >> 8,
        ipPayload & 0xff,
        proto,
        64,
        ...Array(15).fill(0),
        1,
        ...Array(15).fill(0),
        2,
      ]
    : [
        0x45,
        0,
        (20 + ipPayload) >> 8,
        (20 + ipPayload) & 0xff,
        0,
        1,
        0x40,
        0,
        64,
        proto,
        0,
        0,
        10,
        0,
        0,
        1,
        10,
        0,
        0,
        2,
      ];
  const ports = [0x13, 0x88, 0x13, 0x89];
  const l4header = {
    tcp: [...ports, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0],
    udp: [...ports, ipPayload >> 8, ipPayload & 0xff, 0, 0],
    sctp: [...ports, 0, 0, 0, 1, 0, 0, 0, 0],
  }[l4];
  const bytes = [...eth, ...ip, ...l4header];
  for (let i = 0; i < payload; i++) bytes.push(i & 0xff);
  return { bytes: Uint8Array.from(bytes), maclen: eth.length, iplen: ipv6 ? 40 : 20, l4len };
}

class Input {
  constructor(kind) {
    this.header = new Uint8Array(16);
    this.header[0] = kind; // 0: TX walk, 1: RX write, 2: offloads on a raw frame
    this.memory = new Uint8Array(MEMORY);
    this.used = 0;
  }
  /** The ring: `len` descriptors at the start of guest memory (header byte 2 = 0), head and tail. */
  ring(len, head, tail) {
    this.header[1] = len - 1;
    this.header[2] = 0;
    this.header[4] = head;
    this.header[6] = tail;
  }
  put(at, bytes) {
    this.memory.set(bytes, at);
    this.used = Math.max(this.used, at + bytes.length);
  }
  desc(index, qw0, qw1, size = 16) {
    const d = new DataView(this.memory.buffer, index * size, 16);
    d.setBigUint64(0, qw0, true);
    d.setBigUint64(8, qw1, true);
    this.used = Math.max(this.used, index * size + 16);
  }
  bytes() {
    const all = new Uint8Array(16 + this.used);
    all.set(this.header);
    all.set(this.memory.subarray(0, this.used), 16);
    return all;
  }
}

const data = (addr, size, cmd, { maclen, iplen, l4len }, l2tag1 = 0) => [
  BASE + BigInt(addr),
  (BigInt(l2tag1) << 48n) |
    (BigInt(size) << 34n) |
    (BigInt((maclen / 2) | ((iplen / 4) << 7) | ((l4len / 4) << 14)) << 16n) |
    (cmd << 4n),
];
const context = (tsoLen, mss) => [
  0n,
  (BigInt(mss) << 50n) | (BigInt(tsoLen) << 30n) | (CTX_CMD_TSO << 4n) | DTYPE_CONTEXT,
];

/** A TX ring of one packet: an optional TSO context descriptor, then the frame cut into `cuts` buffers. */
function tx({ frameOptions, cmd, mss, cuts = 1, l2tag1 = 0 }) {
  const f = frame(frameOptions);
  const input = new Input(0);
  const descriptors = [];
  const hdr = f.maclen + f.iplen + f.l4len;
  if (mss !== undefined) descriptors.push(context(f.bytes.length - hdr, mss));
  // Buffers from 0x1000 on, each cut as iavf_tx_map cuts a frag list (the header alone first under TSO).
  const bounds = [0];
  if (mss !== undefined) bounds.push(hdr);
  for (let i = 1; i < cuts; i++) bounds.push(hdr + Math.floor(((f.bytes.length - hdr) * i) / cuts));
  bounds.push(f.bytes.length);
  let at = 0x1000;
  for (let i = 0; i + 1 < bounds.length; i++) {
    const part = f.bytes.subarray(bounds[i], bounds[i + 1]);
    input.put(at, part);
    const last = i + 2 === bounds.length;
    descriptors.push(data(at, part.length, cmd | (last ? CMD_EOP | CMD_RS : 0n), f, l2tag1));
    at += (part.length + 63) & ~63;
  }
  for (const [i, [qw0, qw1]] of descriptors.entries()) input.desc(i, qw0, qw1);
  input.ring(Math.max(8, descriptors.length + 1), 0, descriptors.length);
  input.header[8] = 63; // 64 frames a pass
  input.header[9] = 0xff; // and (0xffff + 1) * 16 bytes
  input.header[10] = 0xff;
  return input.bytes();
}

/** An RX ring with `posted` buffers of `buffer` bytes from 0x1000 on; the frame is the input's first `length` bytes. */
function rx({ desc32, posted, buffer = 2048, length, hash, tag }) {
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

function raw(frameOptions) {
  const input = new Input(2);
  input.put(0, frame(frameOptions).bytes);
  return input.bytes();
}

const ipv4 = CMD_IIPT_IPV4_CSUM;
const seeds = {
  'tx-tcp4-csum': tx({ frameOptions: { payload: 200 }, cmd: ipv4 | CMD_L4T_TCP }),
  'tx-udp4-csum': tx({ frameOptions: { l4: 'udp', payload: 300 }, cmd: ipv4 | CMD_L4T_UDP, cuts: 3 }),
  'tx-sctp4-crc': tx({ frameOptions: { l4: 'sctp', payload: 120 }, cmd: ipv4 | CMD_L4T_SCTP }),
  'tx-tcp6-csum': tx({ frameOptions: { ipv6: true, payload: 90 }, cmd: CMD_IIPT_IPV6 | CMD_L4T_TCP }),
  'tx-tcp4-tso': tx({ frameOptions: { payload: 4000 }, cmd: ipv4 | CMD_L4T_TCP, mss: 1448, cuts: 3 }),
  'tx-tcp6-tso': tx({
    frameOptions: { ipv6: true, payload: 3000 },
    cmd: CMD_IIPT_IPV6 | CMD_L4T_TCP,
    mss: 536,
    cuts: 2,
  }),
  'tx-tcp4-tso-vlan': tx({
    frameOptions: { payload: 2500 },
    cmd: ipv4 | CMD_L4T_TCP | CMD_IL2TAG1,
    mss: 1000,
    l2tag1: 100,
  }),
  'tx-udp4-vlan-frame': tx({ frameOptions: { l4: 'udp', payload: 64, vlan: 200 }, cmd: ipv4 | CMD_L4T_UDP }),
  'rx-16-one': rx({ desc32: false, posted: 4, length: 60, hash: false, tag: false }),
  'rx-32-split-hash-tag': rx({ desc32: true, posted: 6, buffer: 512, length: 1500, hash: true, tag: true }),
  'raw-tcp4': raw({ payload: 40 }),
  'raw-udp6': raw({ ipv6: true, l4: 'udp', payload: 40 }),
  'raw-sctp4-vlan': raw({ l4: 'sctp', payload: 40, vlan: 7 }),
};
mkdirSync(out, { recursive: true });
for (const [name, bytes] of Object.entries(seeds)) writeFileSync(join(out, `seed-${name}`), bytes);
console.log(`ring_seeds: ${Object.keys(seeds).length} seeds in ${out}`);
