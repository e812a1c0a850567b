/**
 * One emu_iavf device from a fresh registry, a VfioUserClient connected to it, guest RAM mapped, and a
 * SoftIavf ready to probe: what each test starts from.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineDriver, type EmuDevice, EmudevRegistry } from '@emu/emudev';
import { silentLogger, VfioUserClient } from '@emu/vfio-user';
import { IavfDevice, type IavfOptions } from '../device.js';
import { defaultMac, iavfDriver } from '../driver.js';
import { GuestRam } from './guest-memory.js';
import { type BringUpOptions, SoftIavf, type SoftIavfOptions } from './soft-iavf/main.js';
import { TestNetwork } from './test-network.js';

export interface IavfTestConfig {
  mac?: string;
  queues?: number;
  speed?: number;
  mtu?: number;
  /** devargs spoofchk (default true) and trust (default false). */
  spoofchk?: boolean;
  trust?: boolean;
  /** devargs vlan: the port VLAN. */
  vlan?: number;
}

export interface HarnessOptions {
  /** 'shared' (memfd, direct access; default) or 'plain' (no fd: DMA messages). */
  ram?: 'shared' | 'plain';
  /** Guest RAM size (default 32 MiB). */
  ramMib?: number;
  /** IOVA of guest RAM (default DEFAULT_IOVA_BASE, above 4 GiB). */
  ramBase?: bigint;
  soft?: SoftIavfOptions;
  /**
   * The other end of the NIC's link (a TestNetwork, or anything with IavfOptions.connect): the device is
   * then built with it (devargs as iavfDriver's probe maps them). Without it, iavfDriver's probe builds
   * the device, which joins the process's default network.
   */
  network?: { connect: NonNullable<IavfOptions['connect']> };
}

/** What the device reports in its `stats` attribute (the parts the tests read). */
export interface DeviceStats {
  virtchnl: {
    messages: Record<string, number>;
    errors: Record<string, number>;
    ignored: Record<string, number>;
  };
  policy: { spoofed: number; filtered: number };
  adminQueue: { received: number; sent: number; backlog: number; errors: number };
  interrupts: number[];
  resets: { vf: number; flr: number };
  unknownRegisterAccesses: number;
}

export class Harness {
  private constructor(
    readonly dir: string,
    readonly registry: EmudevRegistry,
    readonly dev: EmuDevice,
    readonly client: VfioUserClient,
    readonly ram: GuestRam,
    readonly vf: SoftIavf,
    /** The emu_iavf device itself, for its data path counters and state. */
    readonly device: IavfDevice,
  ) {}

  static async start(config: IavfTestConfig = {}, opts: HarnessOptions = {}): Promise<Harness> {
    const dir = mkdtempSync(join(tmpdir(), 'emu-soft-iavf-'));
    const registry = new EmudevRegistry();
    let device: IavfDevice | undefined;
    registry.registerDriver(
      defineDriver({
        ...iavfDriver,
        probe: async (ctx, cfg) => {
          const impl = opts.network
            ? new IavfDevice(ctx, {
                mac: cfg.mac ?? defaultMac(ctx.name),
                queues: cfg.queues,
                speed: cfg.speed,
                mtu: cfg.mtu,
                spoofCheck: cfg.spoofchk,
                trusted: cfg.trust,
                portVlan: cfg.vlan,
                connect: opts.network.connect,
              })
            : await iavfDriver.probe(ctx, cfg);
          if (!(impl instanceof IavfDevice)) throw new Error('emu_iavf did not build an IavfDevice');
          device = impl;
          return impl;
        },
      }),
    );
    const dev = registry.allocate('emu_iavf0', 'emu_iavf', {
      path: join(dir, 'iavf.sock'),
      logger: silentLogger,
    });
    let client: VfioUserClient | undefined;
    let ram: GuestRam | undefined;
    try {
      await dev.configure(config);
      await dev.start();
      client = await VfioUserClient.connect(dev.path, { logger: silentLogger });
      const where = opts.ramBase === undefined ? {} : { base: opts.ramBase };
      ram =
        opts.ram === 'plain'
          ? GuestRam.plain(opts.ramMib ?? 32, where)
          : GuestRam.shared(opts.ramMib ?? 32, where);
      await ram.attach(client);
      if (!device) throw new Error('emu_iavf was configured without a device');
      return new Harness(dir, registry, dev, client, ram, new SoftIavf(client, ram, opts.soft), device);
    } catch (err) {
      client?.close();
      ram?.close();
      await registry.release('emu_iavf0');
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /**
   * A device on its own TestNetwork, brought up by SoftIavf (Linux's order, with `bringUp` options):
   * where the data-path tests start. Closed again if the bring-up fails.
   */
  static async linked(
    config: IavfTestConfig = {},
    opts: Omit<HarnessOptions, 'network'> = {},
    bringUp: BringUpOptions = {},
  ): Promise<{ h: Harness; net: TestNetwork; vf: SoftIavf }> {
    const net = new TestNetwork();
    const h = await Harness.start(config, { ...opts, network: net });
    try {
      await h.vf.bringUp(bringUp);
    } catch (err) {
      await h.close();
      throw err;
    }
    return { h, net, vf: h.vf };
  }

  /** The device's counters. */
  stats(): DeviceStats {
    return this.dev.getAttr('stats') as DeviceStats;
  }

  /** Total virtchnl messages the device refused, over all ops. */
  virtchnlErrors(): number {
    return Object.values(this.stats().virtchnl.errors).reduce((a, b) => a + b, 0);
  }

  async close(): Promise<void> {
    this.vf.close();
    this.client.close();
    await this.registry.release('emu_iavf0');
    this.ram.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
