// Ethernet framing the networks need: header sizes, MTU limits, MAC addresses as numbers and text.
import { NetworkError } from './errors.js';

/** Destination MAC, source MAC, EtherType. Frames carry no FCS anywhere in emu. */
export const ETH_HEADER_LEN = 14;
/** An 802.1Q / 802.1ad tag, allowed on top of the MTU. */
export const VLAN_TAG_LEN = 4;
export const DEFAULT_MTU = 1500;
/** IPv4's minimum MTU. */
export const MIN_MTU = 68;
/** The largest MTU a Linux TAP (and an IPv4 packet) allows. */
export const MAX_MTU = 65535;

const TPID_8021Q = 0x8100;
const TPID_8021AD = 0x88a8;

/** The longest frame a port with this MTU takes: MTU + header, + a VLAN tag if the frame has one. */
export function maxFrameLength(mtu: number, frame: Uint8Array): number {
  if (frame.length >= ETH_HEADER_LEN + VLAN_TAG_LEN) {
    const type = (frame[12] << 8) | frame[13];
    if (type === TPID_8021Q || type === TPID_8021AD) return mtu + ETH_HEADER_LEN + VLAN_TAG_LEN;
  }
  return mtu + ETH_HEADER_LEN;
}

/** The 48-bit MAC at `offset` as a number (exact: below 2^53), for use as a map key. */
export function macAt(frame: Uint8Array, offset: number): number {
  return (
    (frame[offset] * 0x10000 + ((frame[offset + 1] << 8) | frame[offset + 2])) * 0x1000000 +
    ((frame[offset + 3] << 16) | (frame[offset + 4] << 8) | frame[offset + 5])
  );
}

/** Whether the destination MAC is a group address (multicast, broadcast included): I/G bit set. */
export function isGroupDestination(frame: Uint8Array): boolean {
  return (frame[0] & 1) === 1;
}

/** Whether the source MAC is a group address (never valid as a source: not learned). */
export function isGroupSource(frame: Uint8Array): boolean {
  return (frame[6] & 1) === 1;
}

/** `aa:bb:cc:dd:ee:ff` for a MAC given as a number (macAt) or 6 bytes. */
export function formatMac(mac: number | Uint8Array): string {
  const bytes = typeof mac === 'number' ? macBytes(mac) : mac;
  if (bytes.length !== 6) throw new RangeError(`a MAC address has 6 bytes, got ${bytes.length}`);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':');
}

function macBytes(mac: number): Buffer {
  const out = Buffer.alloc(6);
  out.writeUIntBE(mac, 0, 6);
  return out;
}

/** 6 bytes from `aa:bb:cc:dd:ee:ff` (or with '-' separators). */
export function parseMac(text: string): Buffer {
  if (typeof text !== 'string' || !/^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$/i.test(text)) {
    throw new NetworkError(
      'EINVAL',
      `invalid MAC address ${JSON.stringify(text)}: expected aa:bb:cc:dd:ee:ff`,
    );
  }
  return Buffer.from(text.replace(/[:-]/g, ''), 'hex');
}

export function validateMtu(mtu: unknown, what: string): number {
  if (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < MIN_MTU || mtu > MAX_MTU) {
    throw new NetworkError(
      'EINVAL',
      `${what}: mtu must be an integer from ${MIN_MTU} to ${MAX_MTU}, got ${String(mtu)}`,
    );
  }
  return mtu;
}
