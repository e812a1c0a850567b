/** SIGINT and SIGTERM as an AbortSignal, for main(); a second signal exits at once. */

export interface ProcessSignal {
  /** Aborted (reason: the signal's name) at the first SIGINT or SIGTERM. */
  signal: AbortSignal;
  /** Removes the handlers. */
  dispose(): void;
}

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
const NUMBERS = { SIGINT: 2, SIGTERM: 15 } as const;

export function processSignal(onForce: (code: number) => void = (code) => process.exit(code)): ProcessSignal {
  const controller = new AbortController();
  const handler = (name: (typeof SIGNALS)[number]) => {
    if (controller.signal.aborted) onForce(128 + NUMBERS[name]);
    else controller.abort(name);
  };
  for (const s of SIGNALS) process.on(s, handler);
  return {
    signal: controller.signal,
    dispose: () => {
      for (const s of SIGNALS) process.off(s, handler);
    },
  };
}
