/**
 * The logging interface every emu package accepts: the call shape of pino (`log.warn(obj, msg)` or
 * `log.warn(msg)`), so a pino logger can be passed as is, without emu forcing a logging library on users.
 */
export interface Logger {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** A logger writing one line per entry to stderr, from `level` up. The default is warnings and errors. */
export function consoleLogger(level: LogLevel = 'warn', name = 'emu'): Logger {
  const at = (lvl: Exclude<LogLevel, 'silent'>) => (obj: object | string, msg?: string) => {
    if (ORDER[lvl] < ORDER[level]) return;
    const text = typeof obj === 'string' ? obj : `${msg ?? ''} ${JSON.stringify(obj, bigintSafe)}`;
    process.stderr.write(`${name} ${lvl}: ${text}\n`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

function bigintSafe(_key: string, value: unknown) {
  return typeof value === 'bigint' ? `0x${value.toString(16)}` : value;
}
