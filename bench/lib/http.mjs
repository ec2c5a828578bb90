// A small HTTP client on node:http (keep-alive, no timeout of its own: a scan may take minutes).
import http from 'node:http';

export const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });

/**
 * `body` may be a string, a Buffer or a Readable (streamed with chunked transfer encoding).
 * Resolves with `{status, text, json, sentAt, headersAt, endAt}` (performance.now() times).
 */
export function request(url, { method = 'GET', headers = {}, body, onSent } = {}) {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const req = http.request(
      { hostname: target.hostname, port: target.port, path: target.pathname + target.search, method, headers, agent },
      (res) => {
        const headersAt = performance.now();
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json = null;
          try {
            json = text ? JSON.parse(text) : null;
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode, text, json, sentAt, headersAt, endAt: performance.now() });
        });
      },
    );
    req.on('error', reject);
    let sentAt = performance.now();
    if (body && typeof body.pipe === 'function') {
      body.on('error', (error) => req.destroy(error));
      body.pipe(req);
    } else {
      sentAt = performance.now();
      onSent?.(sentAt);
      req.end(body);
    }
  });
}

export const bearer = (key) => ({ Authorization: `Bearer ${key}` });
export const jsonHeaders = (key) => ({ ...bearer(key), 'Content-Type': 'application/json' });
