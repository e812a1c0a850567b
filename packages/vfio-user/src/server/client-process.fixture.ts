/**
 * Run as a child process by the tests: connects to the server given in argv, maps memory with an fd,
 * hands over IRQ eventfds, enables bus mastering, says "ready" and waits to be killed.
 */
import { EventFd, memfdCreate } from '@emu/native';
import { VfioUserClient } from '../client/client.js';

const path = process.argv[2];
const client = await VfioUserClient.connect(path);
const fd = memfdCreate('emu-test-killed', 1 << 20);
await client.dmaMap({ address: 0n, size: 1n << 20n, fd });
const fds = Array.from({ length: 4 }, () => EventFd.create());
await client.setIrqEventfds('msix', 0, fds);
await client.setBusMaster();
process.stdout.write('ready\n');
setInterval(() => {}, 1000);
