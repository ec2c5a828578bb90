import type { IncomingMessage } from 'node:http';

/** Nest mounts app-wide middleware on a catch-all path: a request that met only that matched no route. */
const CATCH_ALL = /^\/?(\{\*\w+\}|\*\w*)$/;

/**
 * The route template a request matched (`/v1/patients/:id`), never the raw URL: for metric labels and span
 * names. A request no route matched (404s, bodies refused before routing) is `unmatched`. Express sets
 * `route` and `baseUrl` on the request it routed.
 */
export function routeTemplate(req: IncomingMessage & { route?: unknown; baseUrl?: string }): string {
  const route = req.route;
  if (
    route &&
    typeof route === 'object' &&
    'path' in route &&
    typeof route.path === 'string' &&
    !CATCH_ALL.test(route.path)
  ) {
    return `${req.baseUrl ?? ''}${route.path}` || '/';
  }
  // A sub-application mounted on a path (the queue dashboard): its mount point, not what follows.
  return req.baseUrl ? `${req.baseUrl}/*` : 'unmatched';
}
