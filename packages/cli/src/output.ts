/**
 * stdout and stderr that can go away. `emu … | head`, or a log collector that dies, closes the pipe:
 * Node then reports EPIPE as an 'error' event on the stream, which, unheard, would end the process
 * and every guest's device with it. Guarded, a lost stream is dropped quietly and serving goes on.
 */

/** Where emu writes its text: stdout, stderr, or a test's capture. */
export interface Output {
  write(text: string): unknown;
  /** When true, a status line is printed every --status seconds. */
  isTTY?: boolean;
}

interface Stream extends Output {
  on?(event: 'error', listener: (err: Error) => void): unknown;
}

/**
 * A stream whose failure (EPIPE, EIO…) stops further writes instead of ending the process. `onLost`
 * runs once, with the error, when that happens.
 */
export function guardOutput(stream: Stream, onLost: (err: Error) => void = () => {}): Output {
  let lost = false;
  const lose = (err: Error) => {
    if (lost) return;
    lost = true;
    onLost(err);
  };
  stream.on?.('error', lose);
  return {
    get isTTY() {
      return !lost && stream.isTTY;
    },
    write(text: string) {
      if (lost) return false;
      try {
        return stream.write(text);
      } catch (err) {
        lose(err as Error);
        return false;
      }
    },
  };
}
