// Root hooks: the whole suite must end with exactly the fds it started with.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { expect } from 'chai';
import { fdDiff, openFds } from './test-helpers.js';

let atStart: Map<number, string>;

before(async () => {
  // libuv opens its SIGCHLD pipe with the first child process and keeps it: open it now so that
  // tests spawning children do not look like leaks.
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await once(child, 'exit');
  atStart = openFds();
});

after(async function () {
  this.timeout(5000);
  // Let fds whose close is reported on a later tick (child process pipes) settle.
  let diff = '';
  for (let i = 0; i < 50; i++) {
    diff = fdDiff(atStart, openFds());
    if (diff === '') break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  expect(diff, 'fds opened by the suite and never closed').to.equal('');
});
