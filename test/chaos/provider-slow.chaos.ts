import { createServer, request, type Server } from 'node:http';
import { freePort } from '../helpers/wait';
import { enqueue, openScenario, seedNotices, settle, tally, type Scenario } from './harness';

const N = 200;
/** Longer than the dispatcher's provider timeout (15 s) plus its first retry's backoff. */
const HOLD_MS = 20_000;
const SLOW_EVERY = 20;

/**
 * The provider is slow, not down: one create in 20 is held 20 s on its way in (longer than the dispatcher's 15 s
 * client timeout, and than the first retry's backoff), then processed all the same, as a provider keeps working on
 * a request whose caller hung up. The dispatcher sees no answer, so the attempt's outcome is unknown: it must not
 * send again while the first request may still land. Every notification exactly once.
 */
describe('chaos: provider slower than the client timeout', () => {
  let s: Scenario | undefined;
  let proxy: Server | undefined;
  afterAll(async () => {
    proxy?.closeAllConnections();
    await new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
    await s?.close();
  });

  it('sends each of 200 notifications exactly once when some creates are processed after the caller gave up', async () => {
    const port = await freePort();
    const target = { url: '' };
    let held = 0;
    proxy = holdingProxy(target, () => {
      held += 1;
      return held % SLOW_EVERY === 0;
    });
    await new Promise<void>((resolve) => proxy?.listen(port, '127.0.0.1', () => resolve()));
    s = await openScenario('provider-slow', {}, { TWILIO_API_BASE_URL: `http://127.0.0.1:${port}` });
    target.url = s.stack.urls.sandbox;

    const { ids, expected } = await seedNotices(s, N);
    await enqueue(s, ids);
    const settled = await settle(s, 180000, HOLD_MS);
    const result = await tally(s, expected, {
      heldCreates: Math.floor(held / SLOW_EVERY),
      holdMs: HOLD_MS,
      settled,
    });
    expect(result).toMatchObject({
      lost: 0,
      duplicated: 0,
      notSent: 0,
      notificationRows: N,
      unaccountedTexts: 0,
    });
  });
});

/**
 * Forwards everything to `target.url`; a message create for which `slow()` says so is held `HOLD_MS` first and
 * forwarded whether or not the caller is still waiting (its answer then goes nowhere).
 */
function holdingProxy(target: { url: string }, slow: () => boolean): Server {
  return createServer((req, res) => {
    let gone = false;
    res.on('close', () => (gone = true));
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const create = req.method === 'POST' && /\/Messages\.json$/.test(req.url ?? '');
      const forward = () => {
        const upstream = new URL(target.url);
        const out = request(
          {
            host: upstream.hostname,
            port: upstream.port,
            method: req.method,
            path: req.url,
            headers: req.headers,
          },
          (answer) => {
            if (gone) return answer.resume();
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        out.on('error', () => (gone ? undefined : res.writeHead(502).end()));
        out.end(body);
      };
      if (create && slow()) setTimeout(forward, HOLD_MS);
      else forward();
    });
  });
}
