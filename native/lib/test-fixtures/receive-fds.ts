// Child process for fd-passing.test.ts: connects to argv[2] and reports, as one JSON line on stdout,
// what it received. Run with a low `ulimit -n` so that received fds cannot all be installed.
import { readdirSync } from 'node:fs';
import { UnixSocket } from '../index.js';

const openFds = () => readdirSync('/proc/self/fd').length;
const socket = UnixSocket.connect(process.argv[2]);
const report = {
  bytes: 0,
  fds: 0,
  error: undefined as string | undefined,
  message: undefined as string | undefined,
  closedAfterError: false,
  openFdsBefore: openFds(),
  openFdsAfter: 0,
};
socket.on('data', (chunk, fds) => {
  report.bytes += chunk.length;
  report.fds += fds.length;
});
socket.on('error', (error) => {
  report.error = error.code;
  report.message = error.message;
});
socket.on('close', () => {
  report.closedAfterError = report.error !== undefined;
  report.openFdsAfter = openFds();
  process.stdout.write(`${JSON.stringify(report)}\n`);
});
