// Loopback: every frame a port sends comes straight back to it. Ports on one Loopback are
// independent of each other.
import { BaseNetwork, type Member, type NetworkOptions } from './base-network.js';

export class Loopback extends BaseNetwork {
  readonly kind = 'loopback' as const;

  constructor(name = 'loopback', options: NetworkOptions = {}) {
    super(name, options);
  }

  protected override forward(from: Member, frame: Buffer): void {
    this.deliverTo(from, frame);
  }
}
