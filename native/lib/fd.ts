// Plain file descriptor helpers.
import { binding } from './binding.js';
import { callNative } from './errors.js';
import { validateFd } from './validate.js';

/** close(2). Throws (EBADF) if fd is not open: closing a wrong fd is a bug worth seeing. */
export function closeFd(fd: number): void {
  validateFd(fd);
  callNative(() => binding.close(fd), { target: `fd ${fd}` });
}

/** Closes fds we own on a path that cannot report errors (teardown, dropped fds). */
export function closeQuietly(fds: Iterable<number>): void {
  for (const fd of fds) {
    try {
      binding.close(fd);
    } catch {
      // EBADF here would mean someone else closed our fd; nothing useful to do during teardown.
    }
  }
}

/** CLOEXEC duplicates of fds, all or none. */
export function dupAll(fds: readonly number[]): number[] {
  const dups: number[] = [];
  try {
    for (const fd of fds) dups.push(callNative(() => binding.dupCloexec(fd), { target: `fd ${fd}` }));
  } catch (error) {
    closeQuietly(dups);
    throw error;
  }
  return dups;
}

/**
 * Sets or clears O_NONBLOCK on fd's open file, which every holder of it shares (a peer that sent the
 * fd included). Returns whether it changed.
 */
export function setNonblocking(fd: number, on = true): boolean {
  validateFd(fd);
  return callNative(() => binding.setNonblocking(fd, on), { target: `fd ${fd}` });
}
