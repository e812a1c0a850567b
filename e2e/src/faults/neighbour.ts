import { type BootGuestOptions, type BootGuestResult, bootGuest } from '@emu/guest';
import { until } from '../wait.js';

/**
 * A guest booted in the background for a whole suite (the neighbour a fault must not disturb): its
 * console lines as they come, and stop() to end it whatever state it is in.
 */
export class Neighbour {
  readonly lines: string[] = [];
  private readonly stopper = new AbortController();
  private readonly done: Promise<BootGuestResult>;

  constructor(options: Omit<BootGuestOptions, 'signal' | 'onConsole'>) {
    this.done = bootGuest({ ...options, signal: this.stopper.signal, onConsole: (l) => this.lines.push(l) });
    // stop() collects the outcome; until then a failed boot shows as the wait for its line timing out.
    this.done.catch(() => undefined);
  }

  /** Resolves once a console line includes `text` (up to `timeoutMs`). */
  waitForLine(text: string, what: string, timeoutMs: number): Promise<void> {
    return until(() => this.lines.some((l) => l.includes(text)), what, timeoutMs);
  }

  async stop(): Promise<void> {
    this.stopper.abort();
    await this.done.catch(() => undefined);
  }
}
