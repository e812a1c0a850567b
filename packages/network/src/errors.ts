/** What went wrong, for programs; the message is for people. */
export type NetworkErrorCode =
  /** A malformed argument: a net spec, a name, an MTU, a MAC. */
  | 'EINVAL'
  /** The port is already attached to that network. */
  | 'EEXIST'
  /** The network has no room for another port (a point-to-point link has two ends). */
  | 'EBUSY'
  /** The object was closed. */
  | 'ECLOSED';

/** Errors of @emu/network (system errors from TAP devices come through as @emu/native SystemErrors). */
export class NetworkError extends Error {
  constructor(
    readonly code: NetworkErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'NetworkError';
  }
}
