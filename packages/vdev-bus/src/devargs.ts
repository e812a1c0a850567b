/**
 * Devargs, as in DPDK's `--vdev`: a device name followed by comma-separated `key=value` items,
 * e.g. `emu_gpio0,path=/run/emu/gpio0.sock,lines=8`. The driver is the leading run of letters and
 * underscores of the device name (`emu_gpio0` → `emu_gpio`); the name must end in a number.
 */

import { showText, textProblem } from '@emu/emudev';

/** What went wrong, for programs; the message is for people. */
export type DevargsErrorCode =
  /** The text is not `name,key=value,...`. */
  | 'ESYNTAX'
  /** The device name is not a driver name followed by a number. */
  | 'ENAME'
  /** No registered driver has that name. */
  | 'ENODRIVER'
  /** A device (on this bus or in the registry) already has that name. */
  | 'EDUPLICATE'
  /** A key the driver does not have. */
  | 'EKEY'
  /** A value the key's type or constraints reject. */
  | 'EVALUE'
  /** A key the driver needs was not given. */
  | 'EREQUIRED'
  /** The socket path cannot be served on (missing directory, not writable, a file in the way, too long). */
  | 'EPATH'
  /** Something is already serving on the socket path. */
  | 'EADDRINUSE';

/** A devargs problem, with the message a user sees (it names the device, the key and the value). */
export class DevargsError extends Error {
  constructor(
    readonly code: DevargsErrorCode,
    message: string,
    /** The device name, when the text got that far. */
    readonly device?: string,
    /** The key at fault, if one is. */
    readonly key?: string,
  ) {
    super(message);
    this.name = 'DevargsError';
  }
}

export interface Devargs {
  /** The device name, e.g. `emu_gpio0`. */
  name: string;
  /** The driver name: the name without its trailing number, e.g. `emu_gpio`. */
  driver: string;
  /** The items, as given: every value is a string (possibly empty). */
  args: Record<string, string>;
}

const DEVICE_NAME = /^([A-Za-z_]+)([0-9]+)$/;
const KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const EXAMPLE = 'e.g. emu_gpio0,path=/tmp/emu/gpio0.sock';

/** Splits a device name into its driver name and number, or throws why it is not a device name. */
export function splitDeviceName(name: string): { driver: string; unit: number } {
  const shown = showText(name);
  const bad = textProblem(name, 'name');
  if (bad !== undefined) throw new DevargsError('ENAME', `device name ${shown} ${bad}`, name);
  if (!/^[A-Za-z_]/.test(name)) {
    throw new DevargsError(
      'ENAME',
      `device name ${shown} must start with its driver's name (letters and underscores), ${EXAMPLE}`,
      name,
    );
  }
  if (!/[0-9]$/.test(name))
    throw new DevargsError('ENAME', `device name ${shown} must end in a number`, name);
  const m = DEVICE_NAME.exec(name);
  if (!m) {
    throw new DevargsError(
      'ENAME',
      `device name ${shown} must be a driver name (letters and underscores) followed by a number, ${EXAMPLE}`,
      name,
    );
  }
  return { driver: m[1], unit: Number(m[2]) };
}

/**
 * Parses devargs text. Checks only the syntax: whether the driver exists and the keys and values suit
 * it is the bus's business (VdevBus.validate). Values may contain `=` (the first one splits) but not
 * commas.
 */
export function parseDevargs(text: string): Devargs {
  if (typeof text !== 'string')
    throw new DevargsError('ESYNTAX', `devargs must be a string, not ${typeof text}`);
  const trimmed = text.trim();
  if (trimmed === '')
    throw new DevargsError('ESYNTAX', `devargs are empty: give a device name and its keys, ${EXAMPLE}`);
  const [name, ...items] = trimmed.split(',');
  if (name === '' || name.includes('=')) {
    throw new DevargsError(
      'ESYNTAX',
      `devargs ${showText(trimmed)} must start with a device name, ${EXAMPLE}`,
    );
  }
  const { driver } = splitDeviceName(name);
  const args: Record<string, string> = {};
  for (const item of items) {
    if (item === '') {
      throw new DevargsError(
        'ESYNTAX',
        `${name}: empty item in devargs (two commas in a row, or a trailing comma)`,
        name,
      );
    }
    const eq = item.indexOf('=');
    if (eq < 0) throw new DevargsError('ESYNTAX', `${name}: ${showText(item)} is not key=value`, name, item);
    const key = item.slice(0, eq);
    const value = item.slice(eq + 1);
    if (key === '')
      throw new DevargsError('ESYNTAX', `${name}: ${showText(item)} has no key before "="`, name);
    if (!KEY.test(key)) {
      throw new DevargsError(
        'ESYNTAX',
        `${name}: bad key ${showText(key)} (a key is letters, digits, underscores and dashes)`,
        name,
        key,
      );
    }
    // Keys and values, whatever the key: emu's one rule for text an operator gives (emudev's operator-text).
    const badKey = textProblem(key, 'key');
    if (badKey !== undefined)
      throw new DevargsError('ESYNTAX', `${name}: key ${showText(key)} ${badKey}`, name, key);
    const bad = textProblem(value, 'value');
    if (bad !== undefined)
      throw new DevargsError('EVALUE', `${name}: ${key}: ${showText(value)} ${bad}`, name, key);
    if (Object.hasOwn(args, key))
      throw new DevargsError('ESYNTAX', `${name}: key "${key}" is given twice`, name, key);
    // defineProperty, so that a key such as __proto__ is an own key like any other.
    Object.defineProperty(args, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return { name, driver, args };
}

/** The inverse of parseDevargs, for logs and messages. */
export function formatDevargs(devargs: Devargs): string {
  return [devargs.name, ...Object.entries(devargs.args).map(([k, v]) => `${k}=${v}`)].join(',');
}
