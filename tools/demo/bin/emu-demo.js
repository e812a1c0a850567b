#!/usr/bin/env node
// pnpm demo: runs the built demo (dist/cli.js).
await import(new URL('../dist/cli.js', import.meta.url).href);
