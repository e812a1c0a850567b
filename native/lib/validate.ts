// Argument checks run before any native call: TypeError for the wrong type, RangeError for a value
// out of range, both with Node's codes, so a bad argument never reaches a syscall.
const MAX_FD = 0x7fffffff;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'string')
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? `an instance of ${value.constructor?.name ?? 'Object'}` : typeof value;
}

export function typeError(name: string, expected: string, value: unknown): TypeError {
  const error = new TypeError(`${name} must be ${expected}, got ${describe(value)}`);
  (error as TypeError & { code: string }).code = 'ERR_INVALID_ARG_TYPE';
  return error;
}

export function rangeError(name: string, expected: string, value: unknown): RangeError {
  const error = new RangeError(`${name} must be ${expected}, got ${describe(value)}`);
  (error as RangeError & { code: string }).code = 'ERR_OUT_OF_RANGE';
  return error;
}

export function valueError(name: string, problem: string): TypeError {
  const error = new TypeError(`${name} ${problem}`);
  (error as TypeError & { code: string }).code = 'ERR_INVALID_ARG_VALUE';
  return error;
}

export function validateInteger(
  value: unknown,
  name: string,
  min: number,
  max: number,
): asserts value is number {
  if (typeof value !== 'number') throw typeError(name, 'a number', value);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw rangeError(name, `an integer from ${min} to ${max}`, value);
  }
}

export function validateFd(value: unknown, name = 'fd'): asserts value is number {
  validateInteger(value, name, 0, MAX_FD);
}

/** A non-negative integer given as number or bigint, returned as bigint. */
export function validateUint64(value: unknown, name: string, max: bigint): bigint {
  if (typeof value === 'bigint') {
    if (value < 0n || value > max) throw rangeError(name, `from 0 to ${max}`, value);
    return value;
  }
  if (typeof value !== 'number') throw typeError(name, 'a number or bigint', value);
  if (!Number.isSafeInteger(value) || value < 0 || BigInt(value) > max) {
    throw rangeError(name, `a safe integer from 0 to ${max}`, value);
  }
  return BigInt(value);
}

export function validateBoolean(value: unknown, name: string): asserts value is boolean {
  if (typeof value !== 'boolean') throw typeError(name, 'a boolean', value);
}

export function validateString(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string') throw typeError(name, 'a string', value);
}

export function validateFunction(
  value: unknown,
  name: string,
): asserts value is (...args: never[]) => unknown {
  if (typeof value !== 'function') throw typeError(name, 'a function', value);
}

/** An options bag: undefined (all defaults) or a plain object. */
export function validateOptions<T extends object>(value: unknown, name: string): T {
  if (value === undefined) return {} as T;
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw typeError(name, 'an object', value);
  return value as T;
}
