/**
 * `emu --config FILE`: a YAML file equivalent to the command line. readConfigFile() turns it into the
 * arguments it stands for (options, then one `--vdev DEVARGS` per device) and remembers where each device
 * and each of its keys is written, so that an error found later (by VdevBus.validate or probe) can be
 * reported at FILE:LINE:COL like the file's own errors.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { EmudevError, showText } from '@emu/emudev';
import { type Devargs, DevargsError, formatDevargs, parseDevargs } from '@emu/vdev-bus';
import { type Document, isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { LOG_LEVELS } from './logger.js';
import { parseListen } from './metrics.js';

/** A problem with the config file; the message is `FILE:LINE:COL: what is wrong` (`FILE: ...` without a position). */
export class ConfigFileError extends Error {
  readonly file: string;
  readonly line?: number;
  readonly col?: number;
  constructor(file: string, pos: { line: number; col: number } | undefined, what: string, cause?: unknown) {
    super(`${pos ? `${file}:${pos.line}:${pos.col}` : file}: ${what}`, cause === undefined ? {} : { cause });
    this.name = 'ConfigFileError';
    this.file = file;
    if (pos) {
      this.line = pos.line;
      this.col = pos.col;
    }
  }
}

export interface ConfigFile {
  /** The file, absolute. */
  readonly path: string;
  /** The file as command-line arguments: options first (--log-level, --status, --workers, --control/--no-control, --metrics, --driver...), then one `--vdev DEVARGS` per device. */
  readonly argv: string[];
  /** The devargs strings of the devices, in file order (the same strings as in argv). */
  readonly devices: string[];
  /**
   * An error about one of `devices` (a DevargsError or EmudevError from VdevBus.validate/probe/scan) as a
   * ConfigFileError at that device's entry, or at the value of the key it names. Any other error is
   * returned unchanged.
   */
  locate(err: unknown, devargs?: string): unknown;
}

// The top-level keys. Types and ranges are checked here so that the error carries the line; the
// wording is the command line's (main.ts) where it has one.
const Settings = z
  .object({
    'log-level': z.enum(LOG_LEVELS),
    status: z.number().min(0).max(86400),
    workers: z.number().int().min(1).max(64),
    control: z.union([z.string().min(1), z.literal(false)]),
    metrics: z.string().refine((v) => {
      try {
        return parseListen(v) !== undefined;
      } catch {
        return false;
      }
    }),
    drivers: z.array(z.string().min(1)),
    devices: z.array(z.unknown()),
  })
  .partial();
type Key = keyof z.infer<typeof Settings>;
const KEYS = Object.keys(Settings.shape) as Key[];
const EXPECTED: Record<Key, string> = {
  'log-level': `one of ${LOG_LEVELS.join(', ')}`,
  status: 'seconds from 0 to 86400',
  workers: 'a count from 1 to 64',
  control: 'a socket path, or false for none',
  metrics: 'HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464', // as parseListen says
  drivers: 'a list of driver modules',
  devices: 'a list of devices',
};

/** A devargs key, as parseDevargs accepts it (devargs.ts's KEY). */
const DEVARGS_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;
/** Errors about the device name rather than one of its keys. */
const NAME_CODES = new Set(['ENAME', 'ENODRIVER', 'EDUPLICATE']);

/** Where a device is written: its entry, and the value of each key (`name` included). */
interface Entry {
  name: string;
  at: number;
  keyAt(key: string): number | undefined;
}

/** A value as a message shows it. */
function show(value: unknown): string {
  if (value === null || value === undefined) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return typeof value === 'string' ? showText(value) : String(value);
}

/** What an fs error says, without the path Node appends (the message names the file already). */
function errnoText(err: unknown): string {
  return (err as Error).message.replace(/, \w+ '.*'$/s, '');
}

export function readConfigFile(path: string, cwd = process.cwd()): ConfigFile {
  const file = resolve(cwd, path);
  const dir = dirname(file);
  const lines = new LineCounter();
  const fail = (offset: number | undefined, what: string, cause?: unknown) =>
    new ConfigFileError(path, offset === undefined ? undefined : lines.linePos(offset), what, cause);

  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw fail(undefined, `cannot read the config file: ${errnoText(err)}`, err);
  }
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) throw fail(doc.errors[0].pos[0], doc.errors[0].message, doc.errors[0]);

  // An empty file (or only comments) is an empty configuration.
  const root = doc.contents;
  if (root !== null && !isMap(root)) {
    const what = show(jsOf(doc, root));
    throw fail(rangeOf(root), `expected a mapping of settings (${KEYS.join(', ')}), not ${what}`);
  }
  for (const pair of root?.items ?? []) {
    const key = isScalar(pair.key) ? pair.key.value : pair.key;
    if (typeof key !== 'string' || !(KEYS as string[]).includes(key)) {
      throw fail(rangeOf(pair.key), `unknown key ${show(key)} (keys: ${KEYS.join(', ')})`);
    }
  }
  const data = (root?.toJS(doc) ?? {}) as Record<string, unknown>;
  const parsed = Settings.safeParse(data);
  if (!parsed.success) {
    const where = parsed.error.issues[0].path as [Key, number?];
    const [key, index] = where;
    const value = index === undefined ? data[key] : (data[key] as unknown[])[index];
    const expected = index === undefined ? EXPECTED[key] : 'a driver module (a path or a package name)';
    const label = index === undefined ? key : `${key}[${index}]`;
    throw fail(offsetOf(doc, where), `${label}: expected ${expected}, not ${show(value)}`);
  }
  const settings = parsed.data;

  const entries: Entry[] = [];
  const devices: string[] = [];
  const devicesNode = doc.get('devices', true);
  (isSeq(devicesNode) ? devicesNode.items : []).forEach((item, i) => {
    const { devargs, entry } = readDevice(doc, text, item, `devices[${i}]`, dir, fail);
    const first = entries.find((e) => e.name === entry.name);
    if (first) {
      const line = lines.linePos(first.at).line;
      throw fail(entry.keyAt('name'), `duplicate device name ${entry.name} (first at line ${line})`);
    }
    entries.push(entry);
    devices.push(devargs);
  });

  const argv: string[] = [];
  if (settings['log-level'] !== undefined) argv.push('--log-level', settings['log-level']);
  if (settings.status !== undefined) argv.push('--status', String(settings.status));
  if (settings.workers !== undefined) argv.push('--workers', String(settings.workers));
  if (settings.control === false) argv.push('--no-control');
  else if (settings.control !== undefined) argv.push('--control', resolve(dir, settings.control));
  if (settings.metrics !== undefined) argv.push('--metrics', settings.metrics);
  // Paths as --driver takes them (./x, ../x, /x) are the file's; package names and file: URLs stay.
  for (const d of settings.drivers ?? [])
    argv.push('--driver', d.startsWith('.') || isAbsolute(d) ? resolve(dir, d) : d);
  for (const d of devices) argv.push('--vdev', d);

  const locate = (err: unknown, devargs?: string): unknown => {
    if (!(err instanceof DevargsError || err instanceof EmudevError)) return err;
    const entry = entryOf(entries, devices, err, devargs);
    return entry ? fail(offsetIn(entry, err), err.message, err) : err;
  };
  return { path: file, argv, devices, locate };
}

/** Calls validate (e.g. `(t) => bus.validate(t)`) for each device; throws the first error, located in the file. */
export function checkConfigDevices(config: ConfigFile, validate: (devargs: string) => unknown): void {
  for (const devargs of config.devices) {
    try {
      validate(devargs);
    } catch (err) {
      throw config.locate(err, devargs);
    }
  }
}

/**
 * The device an error is about: the one a DevargsError names (none of the file's if it names another,
 * e.g. a --vdev of the command line), else `devargs`'s, else the one an EmudevError's message starts
 * with (emudev's device errors start with `NAME:`; it has no device field).
 */
function entryOf(entries: Entry[], devices: string[], err: Error, devargs?: string): Entry | undefined {
  if (err instanceof DevargsError && err.device !== undefined)
    return entries.find((e) => e.name === err.device);
  return (
    entries[devargs === undefined ? -1 : devices.indexOf(devargs)] ??
    entries.find((e) => err.message.startsWith(`${e.name}:`))
  );
}

/** Where an error about a device points: the value of the key it names, else the entry. */
function offsetIn(entry: Entry, err: DevargsError | EmudevError): number {
  const key =
    err instanceof DevargsError
      ? (err.key ?? (NAME_CODES.has(err.code) ? 'name' : undefined))
      : err.issues?.[0]?.path.split('.')[0];
  return (key === undefined ? undefined : entry.keyAt(key)) ?? entry.at;
}

/** Where the value at a settings path starts (the key's value, or the item of a list). */
function offsetOf(doc: Document, path: readonly unknown[]): number | undefined {
  return rangeOf(doc.getIn(path, true));
}

type Fail = (offset: number | undefined, what: string, cause?: unknown) => ConfigFileError;
type Ranged = { range?: number[]; toJS?: (doc: Document) => unknown } | null | undefined;
const rangeOf = (node: unknown) => (node as Ranged)?.range?.[0];
const jsOf = (doc: Document, node: unknown) => (isScalar(node) ? node.value : (node as Ranged)?.toJS?.(doc));

/**
 * One entry of `devices`: a devargs string, or a mapping of `name` and devargs keys. Relative socket
 * paths are made absolute against the file's directory, like --driver paths.
 */
function readDevice(
  doc: Document,
  text: string,
  item: unknown,
  label: string,
  dir: string,
  fail: Fail,
): { devargs: string; entry: Entry } {
  const node = isAlias(item) ? item.resolve(doc) : item;
  const at = rangeOf(node) ?? 0;
  let read: { devargs: Devargs; entry: Entry };
  if (isScalar(node) && typeof node.value === 'string') {
    read = fromString(node.value, text.slice(at, node.range![1]), at, fail);
  } else if (isMap(node)) {
    read = fromMapping(doc, node.items, at, label, fail);
  } else {
    const what = show(jsOf(doc, node));
    throw fail(at, `${label}: expected a devargs string or a mapping of name and devargs keys, not ${what}`);
  }
  const { devargs, entry } = read;
  const path = devargs.args.path;
  if (path !== undefined && path !== '') {
    devargs.args.path = resolve(dir, path);
    if (devargs.args.path.includes(',')) {
      const what = `the socket path ${devargs.args.path} contains a comma, which devargs cannot express`;
      throw fail(entry.keyAt('path'), `${label}: ${what}`);
    }
  }
  return { devargs: formatDevargs(devargs), entry };
}

/** A devargs string; `raw` is its source text, which locates its keys when it is the string as is. */
function fromString(value: string, raw: string, at: number, fail: Fail): { devargs: Devargs; entry: Entry } {
  // Plain, or quoted without escapes: the string's characters are the file's.
  const start = raw === value ? at : raw.slice(1, -1) === value ? at + 1 : undefined;
  const keyAt = (key: string) => {
    if (start === undefined) return undefined;
    if (key === 'name') return start + value.length - value.trimStart().length;
    const i = value.indexOf(`,${key}`);
    if (i < 0) return undefined;
    return value.startsWith(`,${key}=`, i) ? start + i + key.length + 2 : start + i + 1;
  };
  const entry = { name: '', at, keyAt };
  const devargs = parseIn(value, entry, fail);
  entry.name = devargs.name;
  return { devargs, entry };
}

/** A mapping of name and devargs keys, each value a string, a number or a boolean. */
function fromMapping(
  doc: Document,
  pairs: Array<{ key: unknown; value: unknown }>,
  at: number,
  label: string,
  fail: Fail,
): { devargs: Devargs; entry: Entry } {
  // No prototype, so that a key such as __proto__ is an own key like any other (as in parseDevargs).
  const args: Record<string, string> = Object.create(null);
  const offsets = new Map<string, number>();
  let name: string | undefined;
  for (const pair of pairs) {
    const k = isAlias(pair.key) ? pair.key.resolve(doc) : pair.key;
    const v = isAlias(pair.value) ? pair.value.resolve(doc) : pair.value;
    const keyAt = rangeOf(k) ?? at;
    const valueAt = rangeOf(v) ?? keyAt;
    const key = isScalar(k) ? String(k.value) : show(jsOf(doc, k));
    if (!DEVARGS_KEY.test(key)) {
      throw fail(keyAt, `${label}: bad key ${show(key)} (a key is letters, digits, underscores and dashes)`);
    }
    const value = jsOf(doc, v);
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw fail(valueAt, `${label}.${key}: expected a string, a number or a boolean, not ${show(value)}`);
    }
    if (key === 'name' && typeof value !== 'string') {
      throw fail(valueAt, `${label}.name: expected a device name, e.g. emu_gpio0, not ${show(value)}`);
    }
    // Numbers as written (0600 stays 0600, 0x10 stays 0x10), as on the command line; booleans as
    // true/false, which the devargs boolean parser takes.
    const devText =
      typeof value === 'number' ? ((v as { source?: string }).source ?? String(value)) : String(value);
    if (devText.includes(',')) {
      throw fail(valueAt, `${label}.${key}: ${show(devText)} contains a comma, which devargs cannot express`);
    }
    offsets.set(key, valueAt);
    if (key === 'name') name = devText;
    else args[key] = devText;
  }
  if (name === undefined) throw fail(at, `${label}: a device needs a name, e.g. name: emu_gpio0`);
  const entry = { name, at, keyAt: (key: string) => offsets.get(key) };
  const devargs = parseIn(formatDevargs({ name, driver: '', args }), entry, fail);
  // The text must say what the mapping says: devargs trim the whole string, so not spaces at its ends.
  const lost = devargs.name !== name ? 'name' : Object.keys(args).find((k) => devargs.args[k] !== args[k]);
  if (lost !== undefined) {
    throw fail(entry.keyAt(lost), `${label}.${lost}: devargs cannot express this value (spaces at its ends)`);
  }
  return { devargs, entry };
}

/** parseDevargs, with its errors at the entry (at the key they name, when it is known). */
function parseIn(text: string, entry: Entry, fail: Fail): Devargs {
  try {
    return parseDevargs(text);
  } catch (err) {
    throw err instanceof DevargsError ? fail(offsetIn(entry, err), err.message, err) : err;
  }
}
