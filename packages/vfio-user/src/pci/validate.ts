// Small checks shared by the option validators; all failures are PciConfigError.

import { PciConfigError } from './types.js';

export function fail(message: string): never {
  throw new PciConfigError(message);
}

export function hex(value: number | bigint): string {
  return `0x${value.toString(16)}`;
}

export function isUint(value: unknown, bits: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value < 2 ** bits;
}

export function requireUint(name: string, value: unknown, bits: number): number {
  if (!isUint(value, bits)) fail(`${name} ${describe(value)} is not an unsigned ${bits}-bit integer`);
  return value;
}

export function describe(value: unknown): string {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? hex(value) : String(value);
}

export function isPowerOfTwo(value: bigint): boolean {
  return value > 0n && (value & (value - 1n)) === 0n;
}
