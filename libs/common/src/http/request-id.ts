import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

export const REQUEST_ID_HEADER = 'X-Request-Id';
/** An incoming id is reused only when it is plainly an id: no spaces, no markup, nothing long enough to carry data. */
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

type WithId = IncomingMessage & { id?: unknown };

/**
 * The request's id: the one already assigned, else the caller's `X-Request-Id` when it is a safe token, else
 * a new UUID. It is echoed in the response header so a caller can quote it, and pino logs it as `req.id`.
 */
export function requestIdOf(req: IncomingMessage, res: ServerResponse): string {
  const request = req as WithId;
  if (typeof request.id === 'string') return request.id;
  const incoming = req.headers['x-request-id'];
  const id = typeof incoming === 'string' && SAFE_ID.test(incoming) ? incoming : randomUUID();
  request.id = id;
  if (!res.headersSent) res.setHeader(REQUEST_ID_HEADER, id);
  return id;
}

/** Express middleware: the first thing every request meets, so even a refused body carries its id. */
export function requestIdMiddleware(req: IncomingMessage, res: ServerResponse, next: () => void): void {
  requestIdOf(req, res);
  next();
}
