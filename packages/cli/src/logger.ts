/** The command's logger: one line per entry on the given stream, from a level up (pino's call shape). */
import type { Logger } from '@emu/vdev-bus';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** A Logger whose level can change while it is in use (the control socket's log.setLevel). */
export interface LevelLogger extends Logger {
  level: LogLevel;
}

export function streamLogger(level: LogLevel, stream: { write(text: string): unknown }): LevelLogger {
  const logger = { level } as LevelLogger;
  const at = (lvl: Exclude<LogLevel, 'silent'>) => (obj: object | string, msg?: string) => {
    if (ORDER[lvl] < ORDER[logger.level]) return;
    const text = typeof obj === 'string' ? obj : `${msg ?? ''} ${JSON.stringify(obj, bigintSafe)}`;
    stream.write(`emu ${lvl}: ${text}\n`);
  };
  return Object.assign(logger, {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  });
}

function bigintSafe(_key: string, value: unknown) {
  return typeof value === 'bigint' ? `0x${value.toString(16)}` : value;
}
