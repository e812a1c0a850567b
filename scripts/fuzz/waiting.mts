/** Waiting in a fuzz target that talks over sockets: each input is short, so turns before timers. */
import { readdirSync } from 'node:fs';

/** One turn of the event loop. */
export const turn = () => new Promise((resolve) => setImmediate(resolve));

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits for `cond`: a few turns first, then 1 ms sleeps; throws naming `what` after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  for (let i = 0; !cond(); i++) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await (i < 16 ? turn() : sleep(1));
  }
}

/** This process's open fds. */
export const openFds = () => readdirSync('/proc/self/fd').length;
