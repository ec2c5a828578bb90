import type { INestApplication } from '@nestjs/common';
import Redis from 'ioredis';
import type { DataSource } from 'typeorm';
import { ConsentApiModule } from '../../apps/consent-api/src/consent-api.module';
import { DispatcherModule } from '../../apps/dispatcher/src/dispatcher.module';
import { SchedulerModule } from '../../apps/scheduler/src/scheduler.module';
import { startTestApp, type TestApp } from '../helpers/app';

export interface Apps {
  consentApi: TestApp;
  scheduler: TestApp;
  dispatcher: TestApp;
  close(): Promise<void>;
}

/**
 * The three apps in-process, each on its own fresh database and queue prefix. Separate databases keep each
 * app's writes its own: the dispatcher's reconciler (every 30 s) would otherwise deliver notifications the
 * scheduler creates, in the middle of a test comparing database states. Rate limits are lifted (they have
 * their own test) and the periodic scan waits a day.
 */
export async function startAllApps(): Promise<Apps> {
  const env = {
    RATE_LIMIT_PER_MINUTE: '1000000',
    WEBHOOK_RATE_LIMIT_PER_MINUTE: '1000000',
    SCAN_INTERVAL_SECONDS: '86400',
  };
  const consentApi = await startTestApp((config) => ConsentApiModule.forRoot(config), { env });
  const scheduler = await startTestApp((config) => SchedulerModule.forRoot(config), {
    env,
    largeBodyRoutes: ['/v1/fills', '/fhir/r4'],
  });
  const dispatcher = await startTestApp((config) => DispatcherModule.forRoot(config), { env });
  return {
    consentApi,
    scheduler,
    dispatcher,
    async close() {
      for (const app of [consentApi, scheduler, dispatcher]) {
        await app.close();
        await deleteKeys(app.config.queue.prefix);
      }
    },
  };
}

/** "METHOD /path" of every route an app serves, as Express registered it (`/v1/patients/:id`). */
export function registeredRoutes(app: INestApplication): string[] {
  const express: unknown = app.getHttpAdapter().getInstance();
  const stack = (
    express as { router: { stack: Array<{ route?: { path: string; methods: Record<string, boolean> } }> } }
  ).router.stack;
  return stack.flatMap((layer) =>
    layer.route
      ? Object.keys(layer.route.methods).map((method) => `${method.toUpperCase()} ${layer.route?.path}`)
      : [],
  );
}

/** Routes that take an API key: everything under /v1 and the FHIR endpoint. */
export const isKeyedRoute = (route: string) => / \/(v1|fhir)\//.test(`${route}/`);

const TABLES = [
  'pharmacies',
  'patients',
  'consents',
  'fills',
  'notifications',
  'messages',
  'inbound_messages',
  'api_keys',
  'consent_events',
  'consent_evidence',
  'message_attempts',
  'access_log',
  'audit_chain_heads',
] as const;

/**
 * Row count and a digest of the content of every main table: equal fingerprints mean nothing was written.
 * Audit rows are compared without their chain columns, which the apps' sealer fills in after the fact.
 */
export async function fingerprint(db: DataSource): Promise<Record<string, string>> {
  const [row] = await db.query<Record<string, string>[]>(
    `SELECT ${TABLES.map(
      (t) =>
        `(SELECT count(*) || ':' || md5(coalesce(string_agg(r, '|' ORDER BY r), '')) FROM (SELECT (to_jsonb(x) - ARRAY['seq', 'prev_hash', 'hash'])::text AS r FROM ${t} x) y) AS ${t}`,
    ).join(', ')}`,
  );
  return row;
}

/** Removes every Redis key under a queue prefix (what a test run leaves behind). */
export async function deleteKeys(prefix: string): Promise<void> {
  const redis = new Redis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
  });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
