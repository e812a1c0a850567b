/**
 * emu_iavf devices on one L2Switch, each with its own client, guest RAM and SoftIavf: with memfd RAM the
 * switch attaches each VF's twin natively (frames between them on the data plane's worker), with
 * fd-less RAM each VF runs its TypeScript path.
 */
import { L2Switch } from '@emu/network';
import type { IavfOptions } from '../device.js';
import { Harness, type HarnessOptions, type IavfTestConfig } from './harness.js';
import type { BringUpOptions } from './soft-iavf/main.js';

let switches = 0;

export class SwitchedNics {
  readonly sw = new L2Switch(`switched-${switches++}`);
  private readonly all: Harness[] = [];

  constructor(private readonly ram: HarnessOptions['ram']) {}

  /** A device on the switch as port `name`, brought up by its SoftIavf (with `bringUp`). */
  async nic(name: string, config: IavfTestConfig, bringUp: BringUpOptions = {}): Promise<Harness> {
    const network: { connect: NonNullable<IavfOptions['connect']> } = {
      connect: (receive, native) => this.sw.attach({ name, deliver: (frame) => receive(frame), native }),
    };
    const h = await Harness.start(config, { ram: this.ram, network });
    this.all.push(h);
    await h.vf.bringUp(bringUp);
    return h;
  }

  async close(): Promise<void> {
    for (const h of this.all.splice(0)) await h.close();
  }
}
