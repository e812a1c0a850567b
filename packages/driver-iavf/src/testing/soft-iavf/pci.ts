/**
 * The PCI half of iavf_probe: pci_enable_device + pci_set_master, the BAR sizes, and the MSI-X
 * capability found and enabled (Linux's iavf has no MSI or INTx fallback).
 */
import { closeFd } from '@emu/native';
import {
  PCI_CAP_ID_MSIX,
  PCI_CAPABILITY_LIST,
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PciRegion,
  type VfioUserClient,
} from '@emu/vfio-user';

export interface PciInfo {
  vendorId: number;
  deviceId: number;
  subsystemVendorId: number;
  subsystemId: number;
  classCode: number;
  revision: number;
  command: number;
  bar0Size: bigint;
  bar3Size: bigint;
  msix: {
    capOffset: number;
    tableSize: number;
    tableBar: number;
    tableOffset: number;
    pbaBar: number;
    pbaOffset: number;
  };
  irqCount: number;
}

async function cfgWrite16(client: VfioUserClient, offset: number, value: number): Promise<void> {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(value & 0xffff, 0);
  await client.regionWrite(PciRegion.CONFIG, offset, b);
}

/** Memory and bus master on, BARs sized, MSI-X enabled and unmasked; what it read on the way. */
export async function probePci(client: VfioUserClient): Promise<PciInfo> {
  const cfg = await client.regionRead(PciRegion.CONFIG, 0, 256);
  let command = cfg.readUInt16LE(PCI_COMMAND) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
  await cfgWrite16(client, PCI_COMMAND, command);
  command = (await client.regionRead(PciRegion.CONFIG, PCI_COMMAND, 2)).readUInt16LE(0);
  const bar0 = await client.getRegionInfo(PciRegion.BAR0);
  const bar3 = await client.getRegionInfo(PciRegion.BAR3);
  // Registers go through region reads and writes: a mappable BAR's fd is not needed.
  for (const info of [bar0, bar3]) if (info.fd !== undefined) closeFd(info.fd);

  let capOffset = 0;
  for (let p = cfg[PCI_CAPABILITY_LIST] & ~3, hops = 0; p !== 0 && hops < 48; p = cfg[p + 1] & ~3, hops++) {
    if (cfg[p] === PCI_CAP_ID_MSIX) {
      capOffset = p;
      break;
    }
  }
  if (!capOffset) throw new Error('probe: no MSI-X capability (Linux iavf has no MSI/INTx fallback)');
  const ctrl = cfg.readUInt16LE(capOffset + 2);
  const table = cfg.readUInt32LE(capOffset + 4);
  const pba = cfg.readUInt32LE(capOffset + 8);
  await cfgWrite16(client, capOffset + 2, (ctrl | PCI_MSIX_FLAGS_ENABLE) & ~PCI_MSIX_FLAGS_MASKALL);

  return {
    vendorId: cfg.readUInt16LE(0x00),
    deviceId: cfg.readUInt16LE(0x02),
    subsystemVendorId: cfg.readUInt16LE(0x2c),
    subsystemId: cfg.readUInt16LE(0x2e),
    classCode: cfg.readUInt32LE(0x08) >>> 8,
    revision: cfg[0x08],
    command,
    bar0Size: bar0.size,
    bar3Size: bar3.size,
    msix: {
      capOffset,
      tableSize: (ctrl & 0x7ff) + 1,
      tableBar: table & 7,
      tableOffset: table & ~7,
      pbaBar: pba & 7,
      pbaOffset: pba & ~7,
    },
    irqCount: (await client.getIrqInfo('msix')).count,
  };
}
