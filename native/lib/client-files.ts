// The files a client hands emu (src/os/client_files.h): what each is, told without a system call that
// could wait on the file's own server, and letting go of them without waiting either.
import { binding } from './binding.js';
import { validateFd, validateInteger } from './validate.js';

/**
 * `eventfd`; `memory` (shmem or hugetlbfs: a memfd, a tmpfs or hugetlbfs file); `disk-file` (a regular
 * file on a local disk filesystem: ext4, xfs, btrfs…); `other` (a file on FUSE, NFS, 9p…, a socket, a
 * pipe, a device: a call on it may wait on another process); `closed`.
 */
export type FileKind = 'eventfd' | 'memory' | 'disk-file' | 'other' | 'closed';

const KINDS: FileKind[] = [];
KINDS[binding.fileKinds.eventfd] = 'eventfd';
KINDS[binding.fileKinds.memory] = 'memory';
KINDS[binding.fileKinds.diskFile] = 'disk-file';
KINDS[binding.fileKinds.other] = 'other';
KINDS[binding.fileKinds.closed] = 'closed';

/** What fd is, and its filesystem's type when it is a file on one ('' otherwise). */
export function fileKind(fd: number): { kind: FileKind; filesystem: string } {
  validateFd(fd);
  const r = binding.fileKind(fd);
  return { kind: KINDS[r.kind], filesystem: r.filesystem };
}

/**
 * Lets go of an fd a client handed over, without waiting on it: an eventfd, memory or a disk file is
 * closed now, anything else by the process's closer thread (emu-closer, watched by the stall
 * detector, which names `owner`: a label of the Watchdog's). Returns whether the closer took it.
 * Not an open fd: nothing happens.
 */
export function releaseFd(fd: number, owner = 0): boolean {
  if (!Number.isInteger(fd) || fd < 0) return false;
  validateInteger(owner, 'owner', 0, Number.MAX_SAFE_INTEGER);
  return binding.releaseFd(fd, owner);
}

/** fds waiting for the closer thread (of `owner`'s only, when given), and closed by it so far. */
export function closerStats(owner?: number): { pending: number; closed: number } {
  return binding.closerStats(owner);
}
