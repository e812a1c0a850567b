/**
 * One line of the control socket in, the reply line out: JSON-RPC 2.0's rules (parse errors, invalid
 * requests, batches, notifications) over the method table (control/methods.ts). Never throws: whatever
 * a line holds and whatever a handler does, the answer is a reply (or, for notifications, nothing).
 */
import { setImmediate } from 'node:timers/promises';
import { showText } from '@emu/emudev';
import { type ControlContext, METHODS } from './methods.js';
import { MAX_BATCH, type RpcErrorBody, RpcErrorCode, type RpcResponse } from './protocol.js';

type Id = string | number | null;

class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: RpcErrorBody['data'],
  ) {
    super(message);
  }
}

/** A JSON-RPC error reply. */
export function rpcError(id: Id, code: number, message: string, data?: RpcErrorBody['data']): RpcResponse {
  return { jsonrpc: '2.0', id, error: data ? { code, message, data } : { code, message } };
}

/** A reply as the line that carries it; a result JSON cannot carry becomes an internal error. */
export function replyLine(reply: RpcResponse | RpcResponse[]): string {
  try {
    return `${JSON.stringify(reply)}\n`;
  } catch (err) {
    const id = Array.isArray(reply) ? null : reply.id;
    const why = `the reply cannot be sent as JSON: ${(err as Error).message}`;
    return `${JSON.stringify(rpcError(id, RpcErrorCode.INTERNAL_ERROR, why))}\n`;
  }
}

/** The reply line to one request line (a request, a batch, or garbage); undefined for notifications only. */
export async function dispatchLine(ctx: ControlContext, line: string): Promise<string | undefined> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (err) {
    return replyLine(rpcError(null, RpcErrorCode.PARSE_ERROR, `parse error: ${(err as Error).message}`));
  }
  if (!Array.isArray(parsed)) {
    const reply = await handle(ctx, parsed);
    return reply && replyLine(reply);
  }
  if (parsed.length === 0) return replyLine(rpcError(null, RpcErrorCode.INVALID_REQUEST, 'an empty batch'));
  if (parsed.length > MAX_BATCH) {
    const why = `a batch of ${parsed.length} requests; at most ${MAX_BATCH}`;
    return replyLine(rpcError(null, RpcErrorCode.INVALID_REQUEST, why));
  }
  const replies: RpcResponse[] = [];
  for (const request of parsed) {
    // Each request of a batch in a turn of the event loop of its own: devices are served in between.
    await setImmediate();
    const reply = await handle(ctx, request);
    if (reply) replies.push(reply);
  }
  return replies.length > 0 ? replyLine(replies) : undefined;
}

async function handle(ctx: ControlContext, request: unknown): Promise<RpcResponse | undefined> {
  const r = request as Record<string, unknown> | null;
  const id = validId(r?.id) ? (r!.id as Id) : null;
  const notification = r !== null && typeof r === 'object' && !('id' in r);
  try {
    if (r === null || typeof r !== 'object' || r.jsonrpc !== '2.0' || typeof r.method !== 'string') {
      throw new RpcError(
        RpcErrorCode.INVALID_REQUEST,
        'invalid request: expected {"jsonrpc":"2.0","method":"…","params":{…},"id":…}',
      );
    }
    if ('id' in r && !validId(r.id)) {
      throw new RpcError(
        RpcErrorCode.INVALID_REQUEST,
        'invalid request: id must be a string, number or null',
      );
    }
    // Own keys only: a method called __proto__ or toString is no method.
    const spec = Object.hasOwn(METHODS, r.method) ? METHODS[r.method as keyof typeof METHODS] : undefined;
    if (!spec) {
      throw new RpcError(
        RpcErrorCode.METHOD_NOT_FOUND,
        `no method ${showText(r.method)} (methods: ${Object.keys(METHODS).join(', ')})`,
      );
    }
    const params = spec.params.safeParse(r.params ?? {});
    if (!params.success) {
      const why = params.error.issues
        .map((i: { path: PropertyKey[]; message: string }) =>
          i.path.length > 0 ? `${i.path.join('.')}: ${i.message}` : i.message,
        )
        .join('; ');
      throw new RpcError(RpcErrorCode.INVALID_PARAMS, `${r.method}: ${why}`);
    }
    // biome-ignore lint/suspicious/noExplicitAny: each row's handler takes its own params' type
    const result = await (spec.handle as (ctx: ControlContext, p: any) => unknown)(ctx, params.data);
    return notification ? undefined : { jsonrpc: '2.0', id, result: result ?? null };
  } catch (err) {
    if (notification) return undefined;
    if (err instanceof RpcError) return rpcError(id, err.code, err.message, err.data);
    const code = (err as { code?: unknown } | null)?.code;
    const message = (err as Error | null)?.message;
    return rpcError(
      id,
      RpcErrorCode.FAILED,
      typeof message === 'string' ? message : String(err),
      typeof code === 'string' ? { code } : undefined,
    );
  }
}

function validId(id: unknown): boolean {
  return id === null || typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id));
}
