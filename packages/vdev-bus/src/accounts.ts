/**
 * User and group names to ids, for the socket keys (owner=, group=, allow_users=): numeric ids as they
 * are, names looked up in /etc/passwd and /etc/group, the files getpwnam(3) and getgrnam(3) read on a
 * host without a directory service. Node has no getpwnam; a native call would buy NSS lookups
 * (LDAP, systemd-homed) that the service accounts QEMU runs as (libvirt-qemu) do not need.
 */
import { readFileSync } from 'node:fs';

function lookup(file: string, name: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name && fields.length >= 3 && /^\d+$/.test(fields[2])) return Number(fields[2]);
  }
  return undefined;
}

function resolveId(kind: 'user' | 'group', text: string, files: AccountFiles): number {
  if (/^\d+$/.test(text)) {
    const id = Number(text);
    if (id > 0xfffffffe) throw new Error(`${text} is not a ${kind} id`);
    return id;
  }
  const file = kind === 'user' ? files.passwd : files.group;
  const id = lookup(file, text);
  if (id === undefined) throw new Error(`no ${kind} named "${text}" in ${file}`);
  return id;
}

export interface AccountFiles {
  passwd: string;
  group: string;
}

export const SYSTEM_ACCOUNTS: AccountFiles = { passwd: '/etc/passwd', group: '/etc/group' };

/** A user name or uid, as a uid; throws the reason it is neither. */
export function uidOf(text: string, files: AccountFiles = SYSTEM_ACCOUNTS): number {
  return resolveId('user', text, files);
}

/** A group name or gid, as a gid; throws the reason it is neither. */
export function gidOf(text: string, files: AccountFiles = SYSTEM_ACCOUNTS): number {
  return resolveId('group', text, files);
}
