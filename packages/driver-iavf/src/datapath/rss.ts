/** Receive-side scaling: the Toeplitz hash over the flow's addresses and ports, with the VF's key and LUT. */
import { type Layers, parseLayers } from './checksum.js';

export function toeplitz(key: Uint8Array, input: Uint8Array): number {
  let hash = 0;
  // A 32-bit window of the key, advanced one bit per input bit.
  let window = ((key[0] << 24) | (key[1] << 16) | (key[2] << 8) | key[3]) >>> 0;
  let next = 4;
  for (let i = 0; i < input.length; i++) {
    for (let bit = 7; bit >= 0; bit--) {
      if (input[i] & (1 << bit)) hash = (hash ^ window) >>> 0;
      const inBit = next < key.length ? (key[next] >> bit) & 1 : 0;
      window = ((window << 1) | inBit) >>> 0;
    }
    next++;
  }
  return hash >>> 0;
}

/** The hash input of a frame: IPs, plus ports for TCP and UDP; undefined for non-IP frames. */
export function rssInput(
  frame: Uint8Array,
  layers: Layers | undefined = parseLayers(frame),
): Uint8Array | undefined {
  if (!layers) return undefined;
  const { l3, l4, ipv4, proto } = layers;
  const ips = ipv4 ? frame.subarray(l3 + 12, l3 + 20) : frame.subarray(l3 + 8, l3 + 40);
  const ports =
    (proto === 6 || proto === 17) && frame.length >= l4 + 4 ? frame.subarray(l4, l4 + 4) : undefined;
  const out = new Uint8Array(ips.length + (ports?.length ?? 0));
  out.set(ips, 0);
  if (ports) out.set(ports, ips.length);
  return out;
}
