#!/usr/bin/env node
/** Serves one doorbell device: `emu-example-doorbell /tmp/doorbell.sock`. */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { consoleLogger } from '@emu/vfio-user';
import { DoorbellDevice } from './device.js';

const path = process.argv[2] ?? '/tmp/emu/doorbell.sock';
if (path.startsWith('-')) {
  process.stderr.write('usage: emu-example-doorbell [SOCKET_PATH]   (default /tmp/emu/doorbell.sock)\n');
  process.exit(2);
}
const device = new DoorbellDevice({ path, logger: consoleLogger('info', 'doorbell') });
try {
  mkdirSync(dirname(path), { recursive: true });
  device.listen();
} catch (err) {
  process.stderr.write(`emu-example-doorbell: ${(err as Error).message}\n`);
  process.exit(1);
}
process.stdout.write(
  `doorbell: serving ${path}\nQEMU: -device '{"driver":"vfio-user-pci","socket":{"path":"${path}","type":"unix"}}'\n`,
);
const stop = () => {
  device.close();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
