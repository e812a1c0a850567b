/**
 * The VF's configuration as its twin in the data plane takes it (@emu/native's IavfNicConfig): what
 * the worker's filters, RSS, rings and interrupts follow. DataPath pushes it after every virtchnl change.
 */
import type { IavfNicConfig } from '@emu/native';
import type { VfConfig } from '../pf.js';

/** The host's side of the VF's policy (emu_iavf's devargs). */
export interface TwinHost {
  mac: string;
  spoofCheck?: boolean;
  portVlan?: number;
}

function macNumber(mac: string): number {
  return Number.parseInt(mac.replaceAll(':', ''), 16);
}

function macBytes(mac: string): number[] {
  return mac.split(':').map((h) => Number.parseInt(h, 16));
}

export function twinConfig(cfg: VfConfig, host: TwinHost): IavfNicConfig {
  return {
    mac: Uint8Array.from(macBytes(host.mac)),
    macs: [...cfg.macs].map(macNumber),
    promisc: cfg.promisc & 0x3,
    spoofCheck: host.spoofCheck ?? false,
    vlans: [...cfg.vlans],
    vlanStrip: cfg.vlanStrip,
    portVlan: host.portVlan ?? 0,
    rssKey: cfg.rssKey,
    rssLut: cfg.rssLut,
    numQueuePairs: cfg.numQueuePairs,
    tx: cfg.tx.map((t) => t && { ring: t.ring, length: t.length }),
    rx: cfg.rx.map(
      (r) =>
        r && {
          ring: r.ring,
          length: r.length,
          bufferSize: r.bufferSize,
          maxFrame: r.maxFrame,
          descSize: r.descSize,
        },
    ),
    txEnabled: cfg.txEnabled,
    rxEnabled: cfg.rxEnabled,
    irqMap: [...cfg.irqMap].map(([vector, m]) => ({ vector, ...m })),
  };
}
