// A switch-less link between exactly two ports (a NIC and a TAP): whatever one end sends, the other
// end gets, whatever the MAC addresses say.
import { BaseNetwork, type Member, type NetworkOptions } from './base-network.js';
import { NetworkError } from './errors.js';
import type { Port } from './port.js';

export class PointToPoint extends BaseNetwork {
  readonly kind = 'point-to-point' as const;

  constructor(name: string, options: NetworkOptions = {}) {
    super(name, options);
  }

  protected override checkAttach(port: Port): void {
    if (this.members.size >= 2) {
      throw new NetworkError(
        'EBUSY',
        `${this.name}: a point-to-point link has two ends (${this.ports.join(', ')}); ${port.name} cannot join`,
      );
    }
  }

  protected override forward(from: Member, frame: Buffer): void {
    for (const member of this.members.values()) {
      if (member !== from) {
        this.deliverTo(member, frame);
        return;
      }
    }
    from.counters.drops.noDestination++;
  }
}
