/**
 * Is a socket path fit to serve on? Checked before a device is built, so a user learns what is wrong
 * with the path in words rather than from a failed listen(2): a missing or unwritable directory, a
 * file in the way, a server already there, a directory where someone else could swap the socket for
 * their own (and so receive the guest's memory when QEMU connects). A stale socket file (nobody
 * accepts on it, as a killed server leaves) is removed and logged.
 */
import { constants } from 'node:fs';
import { access, lstat, realpath, stat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname, resolve, sep } from 'node:path';
import { showText, TEXT_LIMITS, textProblem } from '@emu/emudev';
import { DevargsError } from './devargs.js';
import type { Logger } from './logger.js';

/** sun_path holds 108 bytes with the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = TEXT_LIMITS.socketPath;

/**
 * Why an absolute path cannot name a UNIX socket (too long for sun_path, or text emu refuses), or
 * undefined. VdevBus.validate checks it before any device is built; prepareSocketPath again.
 */
export function socketPathProblem(abs: string): string | undefined {
  const bytes = Buffer.byteLength(abs);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    return `too long (${bytes} bytes; a UNIX socket path holds at most ${MAX_SOCKET_PATH_BYTES})`;
  }
  return textProblem(abs, 'socketPath');
}

/** A socket path as a message shows it: as it is when it is a fine path, else quoted, escaped, cut. */
export const showSocketPath = (abs: string) => (textProblem(abs, 'path') === undefined ? abs : showText(abs));

/** How long a connect to an existing socket may take before we call it in use. */
const PROBE_TIMEOUT_MS = 1000;

/** Resolves the path and checks it; removes a stale socket file. Returns the absolute path. */
export async function prepareSocketPath(device: string, path: string, log: Logger): Promise<string> {
  const abs = resolve(path);
  const fail = (code: 'EPATH' | 'EADDRINUSE', why: string) =>
    new DevargsError(code, `${device}: socket path ${showSocketPath(abs)}: ${why}`, device, 'path');
  const bad = socketPathProblem(abs);
  if (bad !== undefined) throw fail('EPATH', bad);
  const dir = dirname(abs);
  const dirStat = await stat(dir).catch((err: NodeJS.ErrnoException) => err);
  if (dirStat instanceof Error) {
    if (dirStat.code === 'ENOENT') throw fail('EPATH', `directory ${dir} does not exist`);
    if (dirStat.code === 'ENOTDIR') throw fail('EPATH', `${dir} is not a directory`);
    throw fail('EPATH', `cannot reach directory ${dir}: ${dirStat.message}`);
  }
  if (!dirStat.isDirectory()) throw fail('EPATH', `${dir} is not a directory`);
  const unsafe = await unsafePath(dir);
  if (unsafe) throw fail('EPATH', unsafe);
  try {
    await access(dir, constants.W_OK | constants.X_OK);
  } catch {
    throw fail('EPATH', `directory ${dir} is not writable`);
  }
  const existing = await lstat(abs).catch((err: NodeJS.ErrnoException) => err);
  if (existing instanceof Error) {
    if (existing.code === 'ENOENT') return abs;
    throw fail('EPATH', `cannot check it: ${existing.message}`);
  }
  if (existing.isDirectory()) throw fail('EPATH', 'is a directory');
  if (!existing.isSocket()) throw fail('EPATH', 'a file that is not a socket is in the way');
  const alive = await accepts(abs);
  if (alive === true) throw fail('EADDRINUSE', 'already in use by a running server');
  if (alive !== false) throw fail('EPATH', `cannot check the socket file: ${alive.message}`);
  try {
    await unlink(abs);
  } catch (err) {
    throw fail('EPATH', `cannot remove the stale socket file: ${(err as Error).message}`);
  }
  log.warn({ device, path: abs }, 'removed a stale socket file nobody was listening on');
  return abs;
}

/**
 * Why a directory is no place for a socket, or undefined if it is fine: nobody but us and root may be
 * able to swap the socket, or a directory on the way to it, for their own. So every symbolic link on
 * the way belongs to us or root (whoever owns one can point it elsewhere), and every directory from /
 * to the socket's, symbolic links resolved, passes unsafeDirectory.
 */
async function unsafePath(dir: string): Promise<string | undefined> {
  const parts = dir.split(sep).filter((p) => p !== '');
  for (let i = 1; i <= parts.length; i++) {
    const at = sep + parts.slice(0, i).join(sep);
    const st = await lstat(at);
    if (st.isSymbolicLink() && st.uid !== me() && st.uid !== 0) {
      return `${at} is a symbolic link of uid ${st.uid}, who could point it elsewhere: use a path without it`;
    }
  }
  const real = await realpath(dir);
  const chain = real.split(sep).filter((p) => p !== '');
  for (let i = 0; i <= chain.length; i++) {
    const at = sep + chain.slice(0, i).join(sep);
    const why = unsafeDirectory(at, await stat(at));
    if (why) return why;
  }
  return undefined;
}

const me = () => process.getuid?.() ?? 0;

/**
 * Why one directory lets others replace what is in it: its owner can (so it must be us or root), and
 * anyone it is writable for, unless the sticky bit limits them to their own files (as in /tmp).
 */
function unsafeDirectory(dir: string, st: { uid: number; mode: number }): string | undefined {
  if (st.uid !== me() && st.uid !== 0) {
    return `directory ${dir} belongs to uid ${st.uid}, who could replace the socket: use a directory you own`;
  }
  const shared = (st.mode & 0o022) !== 0;
  const sticky = (st.mode & 0o1000) !== 0;
  if (shared && !sticky) {
    const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
    return (
      `directory ${dir} is writable by other users (mode ${mode}) and not sticky: any of them could replace ` +
      `the socket and receive guest memory; use a directory only you can write (chmod go-w ${dir}) or set ` +
      `the sticky bit (chmod +t ${dir})`
    );
  }
  return undefined;
}

/** true if something accepts connections on the socket, false if nobody listens, else the error. */
function accepts(path: string): Promise<boolean | Error> {
  return new Promise((done) => {
    const socket = connect({ path });
    const finish = (result: boolean | Error) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.destroy();
      done(result);
    };
    // A listener with a full backlog makes connect hang: that is a live server too.
    const timer = setTimeout(() => finish(true), PROBE_TIMEOUT_MS);
    socket.once('connect', () => finish(true));
    socket.once('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ECONNREFUSED' ? false : err));
  });
}
