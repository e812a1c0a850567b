import { errnoName } from './constants.js';

/**
 * A request the peer got wrong. `errno` goes back in the error reply; `message` goes to the log.
 * Thrown by validation; never escapes the server or the client.
 */
export class ProtocolError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** What a client sees when the server answered with an error reply. */
export class VfioUserError extends Error {
  readonly code: string;
  constructor(
    readonly errno: number,
    readonly command: string,
    detail?: string,
  ) {
    super(`${command} failed: ${errnoName(errno)}${detail ? ` (${detail})` : ''}`);
    this.name = 'VfioUserError';
    this.code = errnoName(errno);
  }
}
