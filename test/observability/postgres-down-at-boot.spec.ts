import { connect, createServer, type Server, type Socket } from 'node:net';
import request from 'supertest';
import { ConsentApiModule } from '../../apps/consent-api/src/consent-api.module';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestApp, type TestApp } from '../helpers/app';
import { freePort, waitFor } from '../helpers/wait';

/** Postgres reachable through a port that refuses connections until `open()`: a database down at boot. */
async function postgresLater(): Promise<{ port: number; open(): Promise<void>; close(): Promise<void> }> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(5432, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    }
    client.pipe(upstream).pipe(client);
  });
  return {
    port,
    open: () => new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve())),
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        if (!server.listening) return resolve();
        server.close(() => resolve());
      }),
  };
}

describe('Postgres unreachable at boot (consent-api)', () => {
  let database: TestDatabase;
  let postgres: Awaited<ReturnType<typeof postgresLater>>;
  let t: TestApp;

  beforeAll(async () => {
    database = await createTestDatabase();
    postgres = await postgresLater();
    const url = new URL(database.url);
    url.port = String(postgres.port);
    t = await startTestApp((config) => ConsentApiModule.forRoot(config), {
      database: { ...database, url: url.toString() },
    });
  }, 20_000);
  afterAll(async () => {
    await t?.close();
    await postgres.close();
    await database.drop();
  }, 20_000);

  it('boots, answers 503 while Postgres is away, and connects by itself when it returns', async () => {
    const health = await request(t.http).get('/health').expect(503);
    expect(health.body).toMatchObject({
      error: { postgres: { status: 'down' } },
      details: { redis: { status: 'up' } },
    });
    // A request that needs the database: 503 (retry later), not 500.
    const pharmacy = () =>
      request(t.http)
        .get('/v1/pharmacies/00000000-0000-4000-8000-000000000000')
        .set('Authorization', `Bearer rxn_${'A'.repeat(43)}`);
    await pharmacy().expect(503);

    await postgres.open();
    await waitFor(
      'postgres connected',
      async () => ((await request(t.http).get('/health')).status === 200 ? true : null),
      15_000,
    );
    // The same request now reaches the key lookup: an unknown key.
    await pharmacy().expect(401);
  }, 30_000);
});
