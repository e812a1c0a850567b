#!/usr/bin/env node
// The emu command: everything is in main() (src/main.ts); this wrapper only wires the process to it.
import { main } from '../dist/index.js';

const code = await main(process.argv.slice(2));
process.exitCode = code;
// Devices are removed and their sockets closed: nothing should keep the process alive. If something
// does (a driver's stray timer), do not hang after the user asked to stop.
setTimeout(() => process.exit(code), 2000).unref();
