/** emu_iavf: the driver the vdev bus and the `emu` command know, with its devargs. */
import { createHash } from 'node:crypto';
import { defineDriver } from '@emu/emudev';
import { NetworkRegistry, parseNetSpec } from '@emu/network';
import { z } from 'zod';
import { MAX_QUEUE_PAIRS } from './constants.js';
import { IavfDevice } from './device.js';

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

/** A stable, locally administered unicast MAC derived from the device name. */
export function defaultMac(name: string): string {
  const h = createHash('sha256').update(`emu:${name}`).digest();
  h[0] = (h[0] & 0xfc) | 0x02;
  return Array.from(h.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}

export const iavfConfig = z.object({
  mac: z
    .string()
    .toLowerCase()
    .regex(MAC, 'expected a MAC address like 02:00:00:00:00:0a')
    .refine((m) => (Number.parseInt(m.slice(0, 2), 16) & 1) === 0, 'must be a unicast address')
    .refine((m) => m !== '00:00:00:00:00:00', 'must not be all zeros')
    .optional()
    .describe('MAC address (default: a stable locally administered one derived from the device name)'),
  queues: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_QUEUE_PAIRS)
    .default(4)
    .describe(`queue pairs, 1-${MAX_QUEUE_PAIRS}`),
  speed: z.coerce.number().int().min(10).max(800_000).default(10_000).describe('link speed in Mbps'),
  mtu: z.coerce.number().int().min(68).max(9000).default(1500).describe('largest MTU the guest may set'),
  spoofchk: z
    .boolean()
    .default(true)
    .describe('drop what the VF sends with a source MAC that is not its own (as a PF spoof check does)'),
  trust: z
    .boolean()
    .default(false)
    .describe('trust the VF: let it add other unicast MACs and enable promiscuous mode'),
  vlan: z.coerce
    .number()
    .int()
    .min(1)
    .max(4094)
    .optional()
    .describe('port VLAN: the host tags what the VF sends and gives it only this VLAN, untagged'),
  net: z
    .string()
    .default('default')
    .superRefine((value, ctx) => {
      try {
        parseNetSpec(value);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    })
    .describe('the network: NAME (a switch; devices on one name share it), tap:IFNAME, or loopback'),
  pcap: z
    .string()
    .min(1)
    .optional()
    .describe('capture everything this NIC sends and receives to a pcap file (created, mode 0600)'),
  pcap_overwrite: z
    .boolean()
    .default(false)
    .describe('replace the pcap file if it exists (by default an existing file is an error)'),
});

let processNetworks: NetworkRegistry | undefined;
/** The networks every emu_iavf of this process joins unless told otherwise. */
export function defaultNetworks(): NetworkRegistry {
  processNetworks ??= new NetworkRegistry();
  return processNetworks;
}

/** An emu_iavf driver whose devices join networks of `networks` (tests give their own). */
export function createIavfDriver(networks: () => NetworkRegistry = defaultNetworks) {
  return defineDriver({
    name: 'emu_iavf',
    type: 'net',
    description: 'Intel Adaptive Virtual Function NIC (8086:1889) for the stock Linux iavf driver',
    config: iavfConfig,
    probe: (ctx, config) =>
      new IavfDevice(ctx, {
        mac: config.mac ?? defaultMac(ctx.name),
        queues: config.queues,
        speed: config.speed,
        mtu: config.mtu,
        spoofCheck: config.spoofchk,
        trusted: config.trust,
        portVlan: config.vlan,
        connect: (receive, native) =>
          networks().attach({ name: ctx.name, deliver: (frame) => receive(frame), native }, config.net, {
            mtu: config.mtu,
            pcap: config.pcap,
            pcapOverwrite: config.pcap_overwrite,
          }),
      }),
  });
}

export const iavfDriver = createIavfDriver();
