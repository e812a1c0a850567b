import { binding } from './binding.js';
import { callNative } from './errors.js';
import { validateString, valueError } from './validate.js';

/**
 * Tells the service manager about this process, as sd_notify(3) does: `state` is newline-separated
 * assignments such as `READY=1\nSTATUS=serving 2 devices`, sent as one datagram to the socket
 * `$NOTIFY_SOCKET` names (a path, or `@name` in the abstract namespace). Returns false, sending
 * nothing, when the variable is unset (not started by systemd with Type=notify); throws SystemError
 * when it is set but the socket cannot be reached.
 */
export function notifySystemd(state: string, env: NodeJS.ProcessEnv = process.env): boolean {
  validateString(state, 'state');
  if (!/^[A-Z_]+=.*(\n[A-Z_]+=.*)*\n?$/.test(state)) {
    throw valueError('state', 'must be VAR=value lines, e.g. READY=1');
  }
  const path = env.NOTIFY_SOCKET;
  if (path === undefined || path === '') return false;
  if (!path.startsWith('/') && !path.startsWith('@')) {
    throw valueError(
      'NOTIFY_SOCKET',
      `must be an absolute path or @abstract name, not ${JSON.stringify(path)}`,
    );
  }
  callNative(() => binding.sdNotify(path, state), { target: path });
  return true;
}
