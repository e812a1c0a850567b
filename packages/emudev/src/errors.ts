/** Errors of the emudev API, with a `code` a program can test and a message a person can read. */
export class EmudevError extends Error {
  constructor(
    readonly code: 'EINVAL' | 'EEXIST' | 'ENOENT' | 'ESTATE' | 'EACCES' | 'EADDRINUSE' | 'ENOTSUP' | string,
    message: string,
    /** For configuration errors: one entry per bad key. */
    readonly issues?: Array<{ path: string; message: string }>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'EmudevError';
  }
}
