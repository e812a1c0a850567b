/** The logger the bus takes and hands to its devices: emudev's (pino's call shape). */
import type { EmudevRegistry } from '@emu/emudev';

export type Logger = NonNullable<Parameters<EmudevRegistry['allocate']>[2]['logger']>;

/** Without a logger, the bus says warnings and errors on stderr and nothing else. */
export const stderrWarnings: Logger = {
  debug() {},
  info() {},
  warn: (obj, msg) => write('warn', obj, msg),
  error: (obj, msg) => write('error', obj, msg),
};

function write(level: string, obj: object | string, msg?: string): void {
  const text = typeof obj === 'string' ? obj : `${msg ?? ''} ${JSON.stringify(obj)}`;
  process.stderr.write(`vdev-bus ${level}: ${text}\n`);
}
