/**
 * The socket keys of devargs (mode=, owner=, group=, allow_users=, sealed_memory=) as the server's
 * options: who may reach a device's socket, and what memory a client may map through it. By default
 * only the user running emu can connect (mode 0600); a QEMU running as another user (libvirt's
 * libvirt-qemu) needs owner= or group= with mode=0660.
 */
import type { ServerOptions, SocketAccess } from '@emu/vfio-user';
import { type AccountFiles, gidOf, SYSTEM_ACCOUNTS, uidOf } from './accounts.js';
import { DevargsError } from './devargs.js';
import { parseBoolean } from './schema.js';

/** What the socket keys give the device's server. */
export type SocketSettings = Pick<ServerOptions, 'requireSealedMemory'> & { socket: SocketAccess };

export function parseSocketKeys(
  device: string,
  args: Readonly<Record<string, string | undefined>>,
  files: AccountFiles = SYSTEM_ACCOUNTS,
): SocketSettings {
  const access: { mode?: number; uid?: number; gid?: number; allowedUids?: number[] } = {};
  const value = <T>(key: string, parse: (text: string) => T): T | undefined => {
    const text = args[key];
    if (text === undefined) return undefined;
    try {
      return parse(text);
    } catch (err) {
      throw new DevargsError('EVALUE', `${device}: ${key}=${text}: ${(err as Error).message}`, device, key);
    }
  };
  access.mode = value('mode', (text) => {
    if (!/^0?[0-7]{3}$/.test(text)) throw new Error('expected octal permission bits, e.g. 0600 or 660');
    return Number.parseInt(text, 8);
  });
  access.uid = value('owner', (text) => uidOf(text, files));
  access.gid = value('group', (text) => gidOf(text, files));
  access.allowedUids = value('allow_users', (text) => {
    const users = text.split(':').filter((u) => u !== '');
    if (users.length === 0) throw new Error('expected users (names or uids), colon-separated');
    return users.map((u) => uidOf(u, files));
  });
  for (const key of Object.keys(access) as Array<keyof typeof access>) {
    if (access[key] === undefined) delete access[key];
  }
  const sealed = value('sealed_memory', parseBoolean);
  return sealed === undefined ? { socket: access } : { socket: access, requireSealedMemory: sealed };
}
