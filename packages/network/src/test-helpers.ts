// Shared by the *.test.ts files (not part of the package): frame builders and parsers, recording
// ports, a tiny IPv4 host (ARP + ICMP echo) to stand in for a guest, network namespaces, tshark.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatMac, parseMac } from './ethernet.js';
import type { Attachment, Port } from './port.js';

export const BROADCAST = 'ff:ff:ff:ff:ff:ff';
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_ARP = 0x0806;

/** An Ethernet frame: header + `payload` (or `payloadLength` bytes of a pattern). */
export function ethFrame(
  dst: string,
  src: string,
  options: { type?: number; payload?: Buffer; payloadLength?: number } = {},
): Buffer {
  const payload =
    options.payload ?? Buffer.from(Array.from({ length: options.payloadLength ?? 46 }, (_, i) => i & 0xff));
  const header = Buffer.alloc(14);
  parseMac(dst).copy(header, 0);
  parseMac(src).copy(header, 6);
  header.writeUInt16BE(options.type ?? 0x88b5, 12); // IEEE local experimental EtherType
  return Buffer.concat([header, payload]);
}

/** A port that records what it is given; `attachment` is set by whoever attaches it. */
export class RecordingPort implements Port {
  readonly frames: Buffer[] = [];
  attachment: Attachment | null = null;
  constructor(readonly name: string) {}
  deliver(frame: Buffer): void {
    this.frames.push(frame);
  }
  /** Sends through the attachment. */
  send(frame: Buffer): void {
    this.attachment!.send(frame);
  }
  take(): Buffer[] {
    return this.frames.splice(0);
  }
}

const ipBytes = (ip: string): Buffer => Buffer.from(ip.split('.').map(Number));
const ipText = (bytes: Buffer): string => [...bytes].join('.');

/** The Internet checksum (RFC 1071). */
export function internetChecksum(data: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < data.length; i += 2) sum += data.readUInt16BE(i);
  if (data.length % 2 === 1) sum += data[data.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function arpFrame(
  op: 'request' | 'reply',
  sender: { mac: string; ip: string },
  target: { mac: string; ip: string },
): Buffer {
  const body = Buffer.alloc(28);
  body.writeUInt16BE(1, 0); // Ethernet
  body.writeUInt16BE(ETHERTYPE_IPV4, 2);
  body[4] = 6;
  body[5] = 4;
  body.writeUInt16BE(op === 'request' ? 1 : 2, 6);
  parseMac(sender.mac).copy(body, 8);
  ipBytes(sender.ip).copy(body, 14);
  parseMac(op === 'request' ? '00:00:00:00:00:00' : target.mac).copy(body, 18);
  ipBytes(target.ip).copy(body, 24);
  return ethFrame(op === 'request' ? BROADCAST : target.mac, sender.mac, {
    type: ETHERTYPE_ARP,
    payload: body,
  });
}

export interface Echo {
  type: 'request' | 'reply';
  srcMac: string;
  dstMac: string;
  srcIp: string;
  dstIp: string;
  id: number;
  seq: number;
  payload: Buffer;
}

export function icmpEchoFrame(echo: Echo): Buffer {
  const icmp = Buffer.alloc(8 + echo.payload.length);
  icmp[0] = echo.type === 'request' ? 8 : 0;
  icmp.writeUInt16BE(echo.id, 4);
  icmp.writeUInt16BE(echo.seq, 6);
  echo.payload.copy(icmp, 8);
  icmp.writeUInt16BE(internetChecksum(icmp), 2);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + icmp.length, 2);
  ip.writeUInt16BE(0x4000, 6); // don't fragment
  ip[8] = 64; // TTL
  ip[9] = 1; // ICMP
  ipBytes(echo.srcIp).copy(ip, 12);
  ipBytes(echo.dstIp).copy(ip, 16);
  ip.writeUInt16BE(internetChecksum(ip), 10);
  return ethFrame(echo.dstMac, echo.srcMac, { type: ETHERTYPE_IPV4, payload: Buffer.concat([ip, icmp]) });
}

export type Parsed =
  | { kind: 'arp'; op: 'request' | 'reply'; senderMac: string; senderIp: string; targetIp: string }
  | (Echo & { kind: 'echo' })
  | { kind: 'udp'; srcIp: string; dstIp: string; srcPort: number; dstPort: number; payload: Buffer }
  | { kind: 'other'; type: number };

/** What a frame is, as far as these tests care. */
export function parseFrame(frame: Buffer): Parsed {
  const type = frame.readUInt16BE(12);
  if (type === ETHERTYPE_ARP && frame.length >= 42) {
    return {
      kind: 'arp',
      op: frame.readUInt16BE(20) === 1 ? 'request' : 'reply',
      senderMac: formatMac(frame.subarray(22, 28)),
      senderIp: ipText(frame.subarray(28, 32)),
      targetIp: ipText(frame.subarray(38, 42)),
    };
  }
  if (type === ETHERTYPE_IPV4 && frame.length >= 42 && frame[23] === 17) {
    const udp = 14 + (frame[14] & 0x0f) * 4;
    return {
      kind: 'udp',
      srcIp: ipText(frame.subarray(26, 30)),
      dstIp: ipText(frame.subarray(30, 34)),
      srcPort: frame.readUInt16BE(udp),
      dstPort: frame.readUInt16BE(udp + 2),
      payload: frame.subarray(udp + 8, udp + frame.readUInt16BE(udp + 4)),
    };
  }
  if (type === ETHERTYPE_IPV4 && frame.length >= 42 && frame[23] === 1) {
    const ihl = (frame[14] & 0x0f) * 4;
    const icmp = 14 + ihl;
    const icmpType = frame[icmp];
    if (icmpType === 0 || icmpType === 8) {
      const total = frame.readUInt16BE(16);
      return {
        kind: 'echo',
        type: icmpType === 8 ? 'request' : 'reply',
        srcMac: formatMac(frame.subarray(6, 12)),
        dstMac: formatMac(frame.subarray(0, 6)),
        srcIp: ipText(frame.subarray(26, 30)),
        dstIp: ipText(frame.subarray(30, 34)),
        id: frame.readUInt16BE(icmp + 4),
        seq: frame.readUInt16BE(icmp + 6),
        payload: frame.subarray(icmp + 8, 14 + total),
      };
    }
  }
  return { kind: 'other', type };
}

/** Polls `predicate` on timers until it holds. */
export async function eventually(predicate: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * A minimal IPv4 host on one port, standing in for a guest: answers ARP for its address and ICMP
 * echo requests to it, resolves neighbours, and pings.
 */
export class MiniHost implements Port {
  attachment: Attachment | null = null;
  readonly neighbours = new Map<string, string>();
  readonly echoReplies: Echo[] = [];
  readonly echoRequestsAnswered: Echo[] = [];
  /** UDP payloads sent to this host's address. */
  readonly datagrams: { from: string; port: number; payload: string }[] = [];
  readonly received: Buffer[] = [];

  constructor(
    readonly name: string,
    readonly mac: string,
    readonly ip: string,
  ) {}

  deliver(frame: Buffer): void {
    this.received.push(frame);
    const p = parseFrame(frame);
    if (p.kind === 'arp') {
      this.neighbours.set(p.senderIp, p.senderMac);
      if (p.op === 'request' && p.targetIp === this.ip) {
        // Answered on a later tick, as a guest would (through its rings), not from inside deliver().
        const reply = arpFrame('reply', { mac: this.mac, ip: this.ip }, { mac: p.senderMac, ip: p.senderIp });
        setImmediate(() => this.attachment?.send(reply));
      }
    } else if (p.kind === 'udp' && p.dstIp === this.ip) {
      this.datagrams.push({ from: p.srcIp, port: p.dstPort, payload: p.payload.toString() });
    } else if (p.kind === 'echo' && p.dstIp === this.ip && p.dstMac === this.mac) {
      if (p.type === 'reply') this.echoReplies.push(p);
      else {
        this.echoRequestsAnswered.push(p);
        const reply = icmpEchoFrame({
          ...p,
          type: 'reply',
          srcMac: this.mac,
          dstMac: p.srcMac,
          srcIp: this.ip,
          dstIp: p.srcIp,
        });
        setImmediate(() => this.attachment?.send(reply));
      }
    }
  }

  async resolve(ip: string, ms = 5000): Promise<string> {
    this.neighbours.delete(ip);
    const request = arpFrame('request', { mac: this.mac, ip: this.ip }, { mac: BROADCAST, ip });
    // Retry: the far side may still be coming up.
    const deadline = Date.now() + ms;
    while (!this.neighbours.has(ip)) {
      if (Date.now() > deadline) throw new Error(`${this.name}: no ARP reply from ${ip} within ${ms} ms`);
      this.attachment!.send(request);
      await eventually(() => this.neighbours.has(ip), `ARP reply from ${ip}`, 500).catch(() => {});
    }
    return this.neighbours.get(ip)!;
  }

  /** Sends echo requests seq 1..count to `ip` and waits for every reply. */
  async ping(ip: string, count: number, ms = 5000): Promise<Echo[]> {
    const mac = this.neighbours.get(ip) ?? (await this.resolve(ip, ms));
    const id = 0x4242;
    for (let seq = 1; seq <= count; seq++) {
      this.attachment!.send(
        icmpEchoFrame({
          type: 'request',
          srcMac: this.mac,
          dstMac: mac,
          srcIp: this.ip,
          dstIp: ip,
          id,
          seq,
          payload: Buffer.from(`emu ping ${seq}`.padEnd(56, '.')),
        }),
      );
    }
    const replies = () => this.echoReplies.filter((r) => r.srcIp === ip && r.id === id);
    await eventually(() => replies().length >= count, `${count} echo replies from ${ip}`, ms);
    return replies();
  }
}

export function tempDir(): { dir: string; path(name: string): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'emu-network-'));
  return {
    dir,
    path: (name) => join(dir, name),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export const isRoot = process.getuid?.() === 0;

export function run(command: string, args: string[]): string {
  return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A network namespace of this machine, for tests that need a kernel on the far side of a TAP. */
export class Netns {
  private constructor(readonly name: string) {}

  static create(name: string): Netns {
    spawnSync('ip', ['netns', 'del', name]); // a leftover of a killed run
    run('ip', ['netns', 'add', name]);
    const ns = new Netns(name);
    // No IPv6 chatter (router solicitations, MLD) on interfaces moved in: the tests see only their own traffic.
    spawnSync('ip', ['netns', 'exec', name, 'sysctl', '-qw', 'net.ipv6.conf.default.disable_ipv6=1']);
    ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  ip(...args: string[]): string {
    return run('ip', ['-n', this.name, ...args]);
  }

  exec(command: string, args: string[]): ReturnType<typeof spawnSync> {
    return spawnSync('ip', ['netns', 'exec', this.name, command, ...args], {
      encoding: 'utf8',
      timeout: 20_000,
    });
  }

  /** Moves interface `ifname` (in our namespace) in, with `address` (CIDR), and brings it up. */
  adopt(ifname: string, address: string): void {
    run('ip', ['link', 'set', ifname, 'netns', this.name]);
    this.ip('addr', 'add', address, 'dev', ifname);
    this.ip('link', 'set', ifname, 'up');
  }

  /** Deletes the namespace (its TAPs go with it). Never throws: cleanup runs after failures too. */
  delete(): void {
    spawnSync('ip', ['netns', 'del', this.name]);
  }
}

const ENSURE_TSHARK = fileURLToPath(new URL('../scripts/ensure-tshark.sh', import.meta.url));
let tsharkProblem: string | null | undefined;

/**
 * null once tshark can run (installing it with scripts/ensure-tshark.sh, once per process, if it
 * is missing), else why not.
 */
export function ensureTshark(): string | null {
  if (tsharkProblem !== undefined) return tsharkProblem;
  if (spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0) {
    tsharkProblem = null;
    return null;
  }
  const install = spawnSync('bash', [ENSURE_TSHARK], { encoding: 'utf8', timeout: 590_000 });
  if (install.status === 0 && spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0) {
    tsharkProblem = null;
  } else {
    const output = `${install.stdout ?? ''}${install.stderr ?? ''}`.trim().split('\n').slice(-5).join('\n');
    tsharkProblem = `tshark is missing and ${ENSURE_TSHARK} could not install it:\n${output || install.error?.message}`;
  }
  return tsharkProblem;
}

/** tshark's field output for a capture: one array of fields per packet. */
export function tsharkFields(
  file: string,
  fields: string[],
  filter?: string,
  extra: string[] = [],
): string[][] {
  const args = ['-r', file, ...extra, '-T', 'fields', '-E', 'separator=|'];
  if (filter !== undefined) args.push('-Y', filter);
  for (const field of fields) args.push('-e', field);
  const result = spawnSync('tshark', args, { encoding: 'utf8' });
  if (result.status !== 0)
    throw new Error(`tshark ${args.join(' ')} failed (${result.status}):\n${result.stderr}`);
  return result.stdout
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => line.split('|'));
}
