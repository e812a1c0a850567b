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

/** How much of one kind of message a rate-limited logger lets through. */
export interface LogRateLimit {
  /** Messages of one kind (level and text) let through per interval. */
  burst: number;
  /** Messages of one level let through per interval, all kinds together. */
  levelBurst: number;
  intervalMs: number;
  /** Kinds tracked at once; messages of more kinds share one budget. */
  maxKinds: number;
}

/** Linux's printk rate limit (10 per 5 s, DEFAULT_RATELIMIT_BURST/INTERVAL), and 100 per level. */
export const DEFAULT_LOG_RATE_LIMIT: LogRateLimit = {
  burst: 10,
  levelBurst: 100,
  intervalMs: 5000,
  maxKinds: 64,
};

interface LogWindow {
  start: number;
  passed: number;
  suppressed: number;
  /** dropped in the window before, said with the next message that passes */
  toReport: number;
}

/**
 * A logger that passes on at most `burst` messages of one kind (level + message text) and `levelBurst`
 * of one level per interval, so a guest or client that repeats a mistake at full speed cannot flood the
 * log. The first message of a kind after a window in which some were dropped says how many:
 * `<message> (N more suppressed in 5 s)`.
 */
export function rateLimitedLogger(
  log: Logger,
  limit: LogRateLimit = DEFAULT_LOG_RATE_LIMIT,
  now: () => number = Date.now,
): Logger {
  const kinds = new Map<string, LogWindow>();
  const levels = new Map<string, LogWindow>();
  const windowFor = (map: Map<string, LogWindow>, key: string, t: number): LogWindow => {
    const w = map.get(key);
    if (w && t - w.start < limit.intervalMs) return w;
    const fresh = { start: t, passed: 0, suppressed: 0, toReport: w?.suppressed ?? 0 };
    map.set(key, fresh);
    return fresh;
  };
  /** The kind's key; when maxKinds are tracked, expired ones with nothing to report make room, else all share one. */
  const kindOf = (level: string, text: string, t: number) => {
    const key = `${level} ${text}`;
    if (kinds.has(key) || kinds.size < limit.maxKinds) return key;
    for (const [k, w] of kinds) if (t - w.start >= limit.intervalMs && w.suppressed === 0) kinds.delete(k);
    return kinds.size < limit.maxKinds ? key : `${level} *`;
  };
  const at = (level: Exclude<LogLevel, 'silent'>) => (obj: object | string, msg?: string) => {
    const t = now();
    const w = windowFor(kinds, kindOf(level, typeof obj === 'string' ? obj : (msg ?? ''), t), t);
    const lw = windowFor(levels, level, t);
    if (w.passed >= limit.burst || lw.passed >= limit.levelBurst) {
      w.suppressed++;
      return;
    }
    w.passed++;
    lw.passed++;
    const earlier = w.toReport;
    w.toReport = 0;
    if (!earlier) return log[level](obj, msg);
    const note = `(${earlier} more suppressed in ${limit.intervalMs / 1000} s)`;
    if (typeof obj === 'string') log[level](`${obj} ${note}`);
    else log[level](obj, `${msg ?? ''} ${note}`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
