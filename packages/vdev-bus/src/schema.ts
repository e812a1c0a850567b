/**
 * A driver's devargs keys, read from its zod 4 config schema: what `emu --help` shows (type, default,
 * description) and how devargs strings become the schema's types before zod validates them.
 */
import type { EmudevDriver } from '@emu/emudev';
import type { z } from 'zod';
import { DevargsError } from './devargs.js';

/** One devargs key as a user sees it. */
export interface KeyInfo {
  key: string;
  /** e.g. `integer 1..32`, `boolean`, `string`, `one of fast|slow`. */
  type: string;
  required: boolean;
  /** The default value, when the key has one. */
  default?: unknown;
  description?: string;
}

export interface DriverInfo {
  name: string;
  type: string;
  description: string;
  /**
   * `path` first (every device has it), then the driver's keys in schema order. The socket keys every
   * device takes as well (SOCKET_KEYS) are not repeated here.
   */
  keys: KeyInfo[];
}

/** The bus-level key every device has. Drivers must not declare it. */
export const PATH_KEY: KeyInfo = {
  key: 'path',
  type: 'path',
  required: true,
  description: 'the vfio-user socket to serve on (made absolute); QEMU connects to it',
};

/**
 * Bus-level keys of the socket: who may reach it, and what memory a client may map through it. Every
 * device has them too; drivers must not declare them.
 */
export const SOCKET_KEYS: readonly KeyInfo[] = [
  {
    key: 'mode',
    type: 'octal',
    required: false,
    default: '0600',
    description: 'permission bits of the socket file (connecting needs write permission)',
  },
  {
    key: 'owner',
    type: 'user',
    required: false,
    description: 'user (name or uid) to give the socket file to, e.g. libvirt-qemu (needs root)',
  },
  {
    key: 'group',
    type: 'group',
    required: false,
    description: 'group (name or gid) to give the socket file to, e.g. with mode=0660',
  },
  {
    key: 'allow_users',
    type: 'users',
    required: false,
    description:
      'only these users (names or uids, colon-separated) may connect; others are refused and logged',
  },
  {
    key: 'sealed_memory',
    type: 'boolean',
    required: false,
    default: false,
    description:
      "refuse guest memory not sealed against shrinking (QEMU's memory-backend-memfd seals; file backends cannot)",
  },
];

/** Every key the bus itself takes. */
export const BUS_KEYS: readonly KeyInfo[] = [PATH_KEY, ...SOCKET_KEYS];
const BUS_KEY_NAMES = new Set(BUS_KEYS.map((k) => k.key));

/** What a devargs string turns into: the base kinds a value can be coerced to. */
type Kind = 'number' | 'integer' | 'bigint' | 'boolean' | 'string' | 'enum' | 'literal' | 'union' | 'other';

interface FieldInfo {
  kind: Kind;
  base: z.ZodType;
  type: string;
  required: boolean;
  default?: unknown;
  description?: string;
}

/** Wrappers that do not change what a value is, only whether it may be absent or what it defaults to. */
const WRAPPERS = new Set(['optional', 'default', 'prefault', 'nullable', 'readonly', 'catch', 'nonoptional']);

// zod 4's definitions, as far as we read them. Typed loosely on purpose: the bus reads only
// documented fields (`def.type`, `innerType`, `in`, `defaultValue`, `entries`, `values`, `options`).
interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  defaultValue?: unknown;
  entries?: Record<string, string | number>;
  values?: unknown[];
  options?: z.ZodType[];
  format?: string | null;
}
const defOf = (s: z.ZodType): Def => (s as unknown as { def: Def }).def;

function field(schema: z.ZodType): FieldInfo {
  let s = schema;
  let description = s.description;
  let dflt: unknown;
  let hasDefault = false;
  for (;;) {
    const def = defOf(s);
    if (def.type === 'default' && !hasDefault) {
      hasDefault = true;
      dflt = def.defaultValue;
    }
    if (WRAPPERS.has(def.type) && def.innerType) s = def.innerType;
    else if (def.type === 'pipe' && def.in) s = def.in;
    else break;
    description ??= s.description;
  }
  const required = !schema.safeParse(undefined).success;
  const info = { base: s, required, description, ...(hasDefault ? { default: dflt } : {}) };
  return { ...info, ...kindOf(s) };
}

function kindOf(s: z.ZodType): { kind: Kind; type: string } {
  const def = defOf(s);
  switch (def.type) {
    case 'number': {
      const n = s as z.ZodNumber;
      const integer = n.isInt;
      const name = integer ? 'integer' : 'number';
      return { kind: integer ? 'integer' : 'number', type: `${name}${range(n.minValue, n.maxValue)}` };
    }
    case 'bigint':
      return { kind: 'bigint', type: 'integer' };
    case 'boolean':
      return { kind: 'boolean', type: 'boolean' };
    case 'string':
      return {
        kind: 'string',
        type: def.format && def.format !== 'regex' ? `string (${def.format})` : 'string',
      };
    case 'enum':
      return { kind: 'enum', type: `one of ${Object.values(def.entries ?? {}).join('|')}` };
    case 'literal':
      return { kind: 'literal', type: (def.values ?? []).map(String).join('|') };
    case 'union':
      return { kind: 'union', type: (def.options ?? []).map((o) => field(o).type).join(' or ') };
    default:
      return { kind: 'other', type: def.type };
  }
}

function range(min: number | null, max: number | null): string {
  const lo =
    min !== null && Number.isFinite(min) && Math.abs(min) < Number.MAX_SAFE_INTEGER ? min : undefined;
  const hi =
    max !== null && Number.isFinite(max) && Math.abs(max) < Number.MAX_SAFE_INTEGER ? max : undefined;
  if (lo !== undefined && hi !== undefined) return ` ${lo}..${hi}`;
  if (lo !== undefined) return ` >= ${lo}`;
  if (hi !== undefined) return ` <= ${hi}`;
  return '';
}

function shapeOf(driver: EmudevDriver): Record<string, z.ZodType> {
  return (driver.config as unknown as { shape?: Record<string, z.ZodType> }).shape ?? {};
}

/** The driver's devargs keys with their type, default and description: what `emu --help` lists. */
export function describeDriver(driver: EmudevDriver): DriverInfo {
  const keys = Object.entries(shapeOf(driver))
    .filter(([key]) => !BUS_KEY_NAMES.has(key))
    .map(([key, schema]): KeyInfo => {
      const { type, required, description, ...rest } = field(schema);
      return { key, type, required, ...('default' in rest ? { default: rest.default } : {}), description };
    });
  return { name: driver.name, type: driver.type, description: driver.description, keys: [PATH_KEY, ...keys] };
}

/** A key's default for people: `16`, `"fast"`, `false`. */
export function formatDefault(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return value.toString();
  return JSON.stringify(value) ?? String(value);
}

/** Help lines for keys: one aligned line each (key, type, default, description). */
export function formatKeys(keys: readonly KeyInfo[], indent = '    '): string[] {
  const rows = keys.map((k) => [
    k.key,
    k.type,
    k.required ? 'required' : 'default' in k ? `default ${formatDefault(k.default)}` : 'optional',
    k.description ?? '',
  ]);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) =>
    `${indent}${r.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c)).join('  ')}`.trimEnd(),
  );
}

/** Help text for one driver: a heading line, then one line per key. */
export function formatDriverHelp(info: DriverInfo, indent = '  '): string {
  const lines = formatKeys(info.keys, indent + indent);
  return [`${indent}${info.name} (${info.type}): ${info.description}`, ...lines].join('\n');
}

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|^0[xX][0-9a-fA-F]+$|^0[oO][0-7]+$|^0[bB][01]+$/;
const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off']);

/** A devargs boolean: true/false, yes/no, on/off, 1/0, any case; throws the reason otherwise. */
export function parseBoolean(text: string): boolean {
  const t = text.toLowerCase();
  if (TRUE.has(t)) return true;
  if (FALSE.has(t)) return false;
  throw new Error('expected a boolean (true/false, yes/no, on/off, 1/0)');
}

/** Turns one devargs string into the field's type; throws the reason it cannot. */
function coerce(f: FieldInfo, text: string): unknown {
  switch (f.kind) {
    case 'number':
    case 'integer': {
      if (!NUMBER.test(text)) throw new Error('expected a number');
      const n = Number(text);
      if (f.kind === 'integer' && !Number.isInteger(n)) throw new Error('expected an integer');
      return n;
    }
    case 'bigint':
      if (!/^[+-]?\d+$|^0[xX][0-9a-fA-F]+$/.test(text)) throw new Error('expected an integer');
      return BigInt(text);
    case 'boolean':
      return parseBoolean(text);
    case 'literal': {
      const hit = (defOf(f.base).values ?? []).find((v) => String(v) === text);
      return hit === undefined ? text : hit;
    }
    case 'enum': {
      const hit = Object.values(defOf(f.base).entries ?? {}).find((v) => String(v) === text);
      return hit === undefined ? text : hit;
    }
    case 'union': {
      for (const option of defOf(f.base).options ?? []) {
        try {
          const value = coerce(field(option), text);
          if (option.safeParse(value).success) return value;
        } catch {
          // not this option
        }
      }
      return text;
    }
    default:
      return text;
  }
}

/**
 * Turns a device's devargs (without the bus's keys) into the input of its driver's config schema, and checks
 * it with the schema. Throws a DevargsError naming the device, the key and the value.
 */
export function coerceArgs(
  device: string,
  driver: EmudevDriver,
  args: Record<string, string>,
): Record<string, unknown> {
  const shape = shapeOf(driver);
  const taken = SOCKET_KEYS.find((k) => Object.hasOwn(shape, k.key));
  if (taken) {
    throw new DevargsError(
      'EKEY',
      `${device}: driver ${driver.name} declares the key "${taken.key}", which the bus keeps for the socket`,
      device,
      taken.key,
    );
  }
  const fields = new Map(Object.entries(shape).map(([k, s]) => [k, field(s)]));
  const input: Record<string, unknown> = {};
  for (const [key, text] of Object.entries(args)) {
    const f = fields.get(key);
    if (!f || BUS_KEY_NAMES.has(key)) {
      const keys = [...BUS_KEY_NAMES, ...[...fields.keys()].filter((k) => !BUS_KEY_NAMES.has(k))].join(', ');
      throw new DevargsError('EKEY', `${device}: unknown key "${key}" (keys: ${keys})`, device, key);
    }
    try {
      input[key] = coerce(f, text);
    } catch (err) {
      throw new DevargsError('EVALUE', `${device}: ${key}=${text}: ${(err as Error).message}`, device, key);
    }
  }
  for (const [key, f] of fields) {
    if (!BUS_KEY_NAMES.has(key) && f.required && !Object.hasOwn(args, key)) {
      throw new DevargsError('EREQUIRED', `${device}: ${key} is required`, device, key);
    }
  }
  const parsed = driver.config.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = typeof issue.path[0] === 'string' ? issue.path[0] : undefined;
    const where = key === undefined ? '' : Object.hasOwn(args, key) ? `${key}=${args[key]}: ` : `${key}: `;
    throw new DevargsError('EVALUE', `${device}: ${where}${issue.message}`, device, key);
  }
  return input;
}
