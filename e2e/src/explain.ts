/** What an e2e suite's failed expectation prints about its run. */
import type { BootGuestResult } from '@emu/guest';
import type { EmuProcess } from './emu-process.js';

/** One guest: its script's output, and its console's tail when the script did not end well. */
function describeGuest(name: string, g: BootGuestResult | undefined): string {
  if (!g) return `${name}: not booted`;
  const tail = g.exitCode === 0 ? '' : `--- ${name}'s console tail ---\n${g.console.slice(-2500)}\n`;
  return `${name} (exit ${g.exitCode}):\n${g.output}${tail}`;
}

/** Every guest by name, then the tail of emu's stdout and its stderr. */
export function explainRun(guests: Record<string, BootGuestResult | undefined>, emu: EmuProcess): string {
  const parts = Object.entries(guests).map(([name, g]) => describeGuest(name, g));
  return `${parts.join('\n')}\nemu:\n${emu.stdout.slice(-2000)}${emu.stderr}`;
}
