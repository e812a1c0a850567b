// Errors of @emu/native: SystemErrors shaped like Node's own (fs, net), built from the errno and
// syscall the native side reports.
import { constants } from 'node:os';
import { getSystemErrorMap, getSystemErrorName } from 'node:util';
import type { NativeError } from './binding.js';

/**
 * A failed system call. Like Node's own errors, `errno` is negative (-98 for EADDRINUSE), so
 * `util.getSystemErrorName(err.errno)` works; `code` is the portable way to test.
 */
export interface SystemError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
}

/** Whether `error` is a SystemError, optionally with the given `code` (e.g. 'ENOENT'). */
export function isSystemError(error: unknown, code?: string): error is SystemError {
  if (!(error instanceof Error)) return false;
  const e = error as Partial<SystemError>;
  return (
    typeof e.code === 'string' &&
    typeof e.errno === 'number' &&
    typeof e.syscall === 'string' &&
    (code === undefined || e.code === code)
  );
}

const errorMap = getSystemErrorMap();

function codeOf(errno: number): string {
  const name = getSystemErrorName(-errno);
  if (!name.startsWith('Unknown')) return name;
  return Object.entries(constants.errno).find(([, value]) => value === errno)?.[0] ?? `E${errno}`;
}

export interface SystemErrorInit {
  /** Positive errno, as the syscall set it. */
  errno: number;
  syscall: string;
  /** Becomes `path` and is named in the message. */
  path?: string;
  /** What the call was about when there is no path, e.g. 'fd 12'. */
  target?: string;
  /** Overrides the code derived from errno (for conditions that are not an errno, e.g. 'EMSGCTRUNC'). */
  code?: string;
  /** Overrides the standard description of errno. */
  description?: string;
}

/** Builds a SystemError: message `<syscall> <path or target>: <description>`. */
export function createSystemError(init: SystemErrorInit, fallbackDescription?: string): SystemError {
  const description =
    init.description ?? errorMap.get(-init.errno)?.[1] ?? fallbackDescription ?? `errno ${init.errno}`;
  const subject = init.path ?? init.target;
  const error = new Error(`${init.syscall}${subject ? ` ${subject}` : ''}: ${description}`) as SystemError;
  error.code = init.code ?? codeOf(init.errno);
  error.errno = -init.errno;
  error.syscall = init.syscall;
  if (init.path !== undefined) error.path = init.path;
  return error;
}

function isNativeError(error: unknown): error is NativeError {
  return (
    error instanceof Error &&
    typeof (error as NativeError).errno === 'number' &&
    typeof (error as NativeError).syscall === 'string' &&
    (error as Partial<SystemError>).code === undefined
  );
}

/** Runs a native call, turning its errno errors into SystemErrors about `context`. */
export function callNative<T>(fn: () => T, context: { path?: string; target?: string } = {}): T {
  try {
    return fn();
  } catch (error) {
    if (!isNativeError(error)) throw error;
    throw createSystemError({ errno: error.errno, syscall: error.syscall, ...context }, error.message);
  }
}

/** The error for using a closed object: EBADF, as the syscall itself would report. */
export function closedError(syscall: string, what: string): SystemError {
  return createSystemError({ errno: constants.errno.EBADF, syscall, description: `${what} is closed` });
}
