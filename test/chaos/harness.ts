import { execFileSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import Redis from 'ioredis';
import { Pool } from 'pg';
import { loadConfig } from '../../libs/common/src/config/config';
import { KeyRing } from '../../libs/common/src/crypto/key-ring';
import { JOB_OPTIONS, JobName, QueueName, type JobOf } from '../../libs/common/src/queue/queue.catalog';
import type { SandboxMessage } from '../../tools/twilio-sandbox/src/sandbox';
import { ADMIN_URL } from '../helpers/database';
import { TEST_INDEX_KEY, TEST_PHI_KEYS } from '../helpers/config';
import { startStack, type Stack, type StackOptions } from '../helpers/stack';
import { waitFor } from '../helpers/wait';

/**
 * The chaos suite's common ground: a stack of real processes (the Twilio sandbox too, so the "carrier" keeps its own
 * event loop however busy the test process is), fast seeding in SQL, enqueueing as the apps do, and the one tally
 * every scenario reports.
 */

/** CI sets CHAOS_GLOBAL=1: Redis is really flushed and Postgres really restarted. Otherwise only this run's keys and connections are hit. */
export const GLOBAL = process.env.CHAOS_GLOBAL === '1';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const FINAL_SENT = ['sent', 'delivered'];
const OPEN_STATES = ['pending', 'scheduled', 'sending'];

export interface Recipient {
  patientId: string;
  phone: string;
  externalId: string;
}

export interface Pharmacy {
  id: string;
  smsFrom: string;
}

export interface Tally {
  scenario: string;
  notifications: number;
  sent: number;
  lost: number;
  duplicated: number;
  [detail: string]: unknown;
}

export interface Scenario {
  name: string;
  stack: Stack;
  /** A pool on the scenario's database; its connections may be terminated by the scenario, so use it for short queries only. */
  db: Pool;
  redis: Redis;
  queue: Queue<JobOf<JobName.SendNotification>>;
  keys: KeyRing;
  prefix: string;
  startedAt: number;
  close(): Promise<void>;
}

/**
 * A stack for one scenario: its own database and queue prefix, API rate limits lifted (the suite is its own load).
 * Logs at warn unless CHAOS_LOG_LEVEL says otherwise; they are written to $TMPDIR/rxn-chaos-<name>.log at close.
 */
export async function openScenario(
  name: string,
  options: StackOptions = {},
  env: Record<string, string> = {},
): Promise<Scenario> {
  const startedAt = Date.now();
  const stack = await startStack(
    {
      LOG_LEVEL: process.env.CHAOS_LOG_LEVEL ?? 'warn',
      RATE_LIMIT_PER_MINUTE: '1000000',
      WEBHOOK_RATE_LIMIT_PER_MINUTE: '1000000',
      ...env,
    },
    { bootTimeoutMs: 60000, ...options },
  );
  const db = new Pool({ connectionString: stack.database.url, max: 2 });
  // Terminated connections (the Postgres scenario) surface here for idle clients; the next query reconnects.
  db.on('error', () => undefined);
  // The scenarios' own handle on the one test Redis (SCAN, FLUSHALL): a plain single-node client.
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const prefix = stack.env.QUEUE_PREFIX;
  const queue = new Queue<JobOf<JobName.SendNotification>>(QueueName.Delivery, { connection: redis, prefix });
  const config = loadConfig({
    NODE_ENV: 'test',
    PHI_ENCRYPTION_KEYS: TEST_PHI_KEYS,
    PHI_INDEX_KEY: TEST_INDEX_KEY,
  });
  const keys = new KeyRing(config.phi.keys, config.phi.indexKey);
  return {
    name,
    stack,
    db,
    redis,
    queue,
    keys,
    prefix,
    startedAt,
    async close() {
      await queue.close().catch(() => undefined);
      await db.end().catch(() => undefined);
      await stack.stop();
      writeFileSync(join(tmpdir(), `rxn-chaos-${name}.log`), stack.logs());
      // Leave nothing of this run in a shared Redis.
      await deleteKeys(redis, prefix).catch(() => undefined);
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/**
 * Runs `query`, retrying while the scenario's own chaos has the database unreachable (terminated connections,
 * a restarting server).
 */
export async function sql<T extends object>(
  s: Scenario,
  text: string,
  values: unknown[] = [],
  timeoutMs = 60000,
): Promise<T[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return (await s.db.query<T>(text, values)).rows;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(250);
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A zone where it is about midday now, so the "always open" quiet hours (00:00–23:59) never meet their one
 * closed minute, whenever the suite runs. Etc/GMT+N is UTC−N.
 */
export function middayZone(now = new Date()): string {
  const offset = now.getUTCHours() - 12;
  if (offset === 0) return 'UTC';
  return offset > 0 ? `Etc/GMT+${offset}` : `Etc/GMT${offset}`;
}

/** A pharmacy that sends at once, as fast as asked, at any hour. */
export async function seedPharmacy(s: Scenario, smsFrom = '+14155550100'): Promise<Pharmacy> {
  const settings = {
    readyCoalesceSeconds: 0,
    sendRatePerSecond: 1000,
    quietHours: { start: '00:00', end: '23:59' },
  };
  const [row] = await sql<{ id: string }>(
    s,
    `INSERT INTO pharmacies (name, timezone, sms_from, callback_phone, settings) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
    [`Chaos Pharmacy ${s.name}`.slice(0, 60), middayZone(), smsFrom, '+14155550199', settings],
  );
  return { id: row.id, smsFrom };
}

/** A distinct phone per patient, so a count per phone is a count per notification. */
export function phoneFor(index: number, area = '415'): string {
  return `+1${area}${String(2000000 + index)}`;
}

/** Patients with encrypted PHI, the blind index and SMS consent (with its audit event), in a few statements. */
export async function seedPatients(
  s: Scenario,
  pharmacy: Pharmacy,
  count: number,
  options: { externalPrefix?: string; phone?: (i: number) => string } = {},
): Promise<Recipient[]> {
  const externalPrefix = options.externalPrefix ?? 'P-';
  const phone = options.phone ?? ((i: number) => phoneFor(i));
  const recipients: Recipient[] = [];
  for (let start = 0; start < count; start += 1000) {
    const batch = Array.from({ length: Math.min(1000, count - start) }, (_, k) => start + k);
    const phones = batch.map(phone);
    const rows = await sql<{ id: string; external_id: string }>(
      s,
      `INSERT INTO patients (pharmacy_id, external_id, first_name_enc, phone_enc, phone_index, language)
       SELECT $1, e, n, p, x, 'en' FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS t(e, n, p, x)
       RETURNING id, external_id`,
      [
        pharmacy.id,
        batch.map((i) => `${externalPrefix}${i}`),
        batch.map((i) => s.keys.encrypt(`Patient ${i}`)),
        phones.map((p) => s.keys.encrypt(p)),
        phones.map((p) => s.keys.blindIndex(p)),
      ],
    );
    const byExternal = new Map(rows.map((r) => [r.external_id, r.id]));
    batch.forEach((i, k) =>
      recipients.push({
        patientId: byExternal.get(`${externalPrefix}${i}`) ?? '',
        phone: phones[k],
        externalId: `${externalPrefix}${i}`,
      }),
    );
  }
  const ids = recipients.map((r) => r.patientId);
  await sql(
    s,
    `INSERT INTO consents (patient_id, channel, status, source) SELECT unnest($1::uuid[]), 'sms', 'opted_in', 'chaos'`,
    [ids],
  );
  await sql(
    s,
    `INSERT INTO consent_events (patient_id, pharmacy_id, channel, status, source, actor)
     SELECT unnest($1::uuid[]), $2, 'sms', 'opted_in', 'chaos', 'chaos-suite'`,
    [ids, pharmacy.id],
  );
  return recipients;
}

/** A ready fill and its ready notification for each patient, as the scheduler would write them. Returns notification ids in patient order. */
export async function seedReadyNotices(
  s: Scenario,
  pharmacy: Pharmacy,
  patients: string[],
): Promise<string[]> {
  const rows = await sql<{ id: string; patient_id: string }>(
    s,
    `WITH f AS (
       INSERT INTO fills (pharmacy_id, patient_id, external_id, rx_number, fill_number, drug_name, quantity, days_supply,
                          refills_remaining, filled_at, status, ready_at)
       SELECT $1, p, 'F-' || p, 'RX-' || p, 0, 'Atorvastatin 20 mg', 30, 30, 2, now() - interval '1 hour', 'ready', now()
       FROM unnest($2::uuid[]) AS p
       RETURNING id, patient_id)
     INSERT INTO notifications (pharmacy_id, patient_id, kind, fill_ids, dedup_key, due_at)
     SELECT $1, f.patient_id, 'ready', ARRAY[f.id], 'ready:' || f.id, now() FROM f
     RETURNING id, patient_id`,
    [pharmacy.id, patients],
  );
  const byPatient = new Map(rows.map((r) => [r.patient_id, r.id]));
  return patients.map((p) => byPatient.get(p) ?? '');
}

/** Enqueues as the apps do: job id = notification id, payload the id alone, the catalog's options. */
/**
 * The usual setup: one pharmacy, `n` consenting patients, one ready notice each. Returns the notice ids (to
 * enqueue) and, per notice, the phone the sandbox should see it at exactly once (to tally).
 */
export async function seedNotices(
  s: Scenario,
  n: number,
): Promise<{ ids: string[]; expected: { notificationId: string; phone: string }[] }> {
  const pharmacy = await seedPharmacy(s);
  const patients = await seedPatients(s, pharmacy, n);
  const ids = await seedReadyNotices(
    s,
    pharmacy,
    patients.map((p) => p.patientId),
  );
  return { ids, expected: ids.map((id, i) => ({ notificationId: id, phone: patients[i].phone })) };
}

export async function enqueue(s: Scenario, notificationIds: string[]): Promise<void> {
  for (let i = 0; i < notificationIds.length; i += 500) {
    await s.queue.addBulk(
      notificationIds.slice(i, i + 500).map((id) => ({
        name: JobName.SendNotification,
        data: { notificationId: id },
        opts: { ...JOB_OPTIONS[JobName.SendNotification], jobId: id },
      })),
    );
  }
}

/** Everything the sandbox (the carrier) has accepted, optionally for one recipient. */
export async function texts(s: Scenario, to?: string): Promise<SandboxMessage[]> {
  const response = await fetch(
    `${s.stack.urls.sandbox}/sandbox/messages${to ? `?to=${encodeURIComponent(to)}` : ''}`,
  );
  if (!response.ok) throw new Error(`sandbox answered ${response.status}`);
  return (await response.json()) as SandboxMessage[];
}

/** Steers the sandbox's random failures: `POST /sandbox/chaos {rate, kinds, seed}`. */
export async function providerChaos(
  s: Scenario,
  chaos: { rate: number; kinds: Array<'http500' | 'http429' | 'http500AfterRecord'>; seed: number },
): Promise<void> {
  const response = await fetch(`${s.stack.urls.sandbox}/sandbox/chaos`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(chaos),
  });
  if (!response.ok) throw new Error(`sandbox chaos refused: ${response.status} ${await response.text()}`);
}

/** Notifications Postgres has recorded as sent so far (the provider accepted them). */
export async function sentSoFar(s: Scenario): Promise<number> {
  const [row] = await sql<{ n: number }>(
    s,
    `SELECT count(*)::int AS n FROM notifications WHERE state = ANY($1::text[])`,
    [FINAL_SENT],
  );
  return row.n;
}

/** Resolves once Postgres has recorded at least `count` notifications as sent. */
export async function untilSent(s: Scenario, count: number, timeoutMs = 120000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const sent = await sentSoFar(s);
    if (sent >= count) return sent;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${count} notifications sent (have ${sent})`);
    await sleep(100);
  }
}

/**
 * Waits until Postgres owes nothing (no notification pending, held or being sent, no attempt between intent and
 * result) for `quietMs` on end, and the sandbox's count no longer moves. Returns false at the deadline.
 */
export async function settle(s: Scenario, timeoutMs: number, quietMs = 3000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let quietSince: number | null = null;
  let lastTexts = -1;
  while (Date.now() < deadline) {
    try {
      const [row] = (
        await s.db.query<{ open: number; intents: number }>(
          `SELECT (SELECT count(*)::int FROM notifications WHERE state = ANY($1::text[])) AS open,
                  (SELECT count(*)::int FROM messages WHERE status = 'intent') AS intents`,
          [OPEN_STATES],
        )
      ).rows;
      if (row.open === 0 && row.intents === 0) {
        quietSince ??= Date.now();
        if (Date.now() - quietSince >= quietMs) {
          const count = (await texts(s)).length;
          if (count === lastTexts) return true;
          lastTexts = count;
        }
      } else {
        quietSince = null;
      }
    } catch {
      /* the database is being disrupted: look again */
    }
    await sleep(250);
  }
  return false;
}

interface NotificationRow {
  id: string;
  patient_id: string;
  kind: string;
  state: string;
  reason: string | null;
}

interface MessageRow {
  id: string;
  notification_ids: string[];
  status: string;
  provider_sid: string | null;
  error_code: number | null;
  created_at: Date;
}

/**
 * What the carrier received against what Postgres says, per notification. `expected` maps each notification
 * to the phone only it uses. lost: a notification nobody received; duplicated: texts beyond the first per
 * notification. Also reports notifications not `sent`/`delivered`, and texts the database cannot account for.
 */
export async function tally(
  s: Scenario,
  expected: Array<{ notificationId: string; phone: string }>,
  extra: Record<string, unknown> = {},
): Promise<Tally> {
  const received = await texts(s);
  const perPhone = new Map<string, SandboxMessage[]>();
  for (const text of received) perPhone.set(text.to, [...(perPhone.get(text.to) ?? []), text]);
  const phones = new Set(expected.map((e) => e.phone));
  const lostIds = expected
    .filter((e) => (perPhone.get(e.phone)?.length ?? 0) === 0)
    .map((e) => e.notificationId);
  const duplicatedIds = expected
    .filter((e) => (perPhone.get(e.phone)?.length ?? 0) > 1)
    .map((e) => e.notificationId);
  const duplicated = expected.reduce(
    (sum, e) => sum + Math.max(0, (perPhone.get(e.phone)?.length ?? 0) - 1),
    0,
  );
  const stray = received.filter((t) => !phones.has(t.to)).length;

  const notifications = await sql<NotificationRow>(
    s,
    `SELECT id, patient_id, kind, state, reason FROM notifications`,
  );
  const notSent = notifications.filter((n) => !FINAL_SENT.includes(n.state));
  const messages = await sql<MessageRow>(
    s,
    `SELECT id, notification_ids, status, provider_sid, error_code, created_at FROM messages`,
  );
  const knownSids = new Set(messages.map((m) => m.provider_sid).filter((sid): sid is string => sid !== null));
  const unaccounted = received.filter((t) => !knownSids.has(t.sid)).length;
  // A provider call with no HTTP answer at all (timeout, reset) leaves the outcome unknown: how many, and how long
  // after the intent the caller gave up (15 s is the client's timeout; milliseconds, a dropped connection).
  const [{ not_found: notFoundAtProvider, no_answer: noAnswer, no_answer_ms: noAnswerMs }] = await sql<{
    not_found: number;
    no_answer: number;
    no_answer_ms: number[] | null;
  }>(
    s,
    `SELECT count(*) FILTER (WHERE r.status = 'not_found_at_provider')::int AS not_found,
            count(*) FILTER (WHERE r.status = 'unknown' AND r.error_code IS NULL)::int AS no_answer,
            array_agg(DISTINCT (round(extract(epoch FROM r.at - i.at) * 1000 / 1000) * 1000)::int)
              FILTER (WHERE r.status = 'unknown' AND r.error_code IS NULL) AS no_answer_ms
     FROM message_attempts r JOIN message_attempts i ON i.message_id = r.message_id AND i.event = 'intent'
     WHERE r.event = 'result'`,
  );

  const result: Tally = {
    scenario: s.name,
    notifications: expected.length,
    sent: received.length - stray,
    lost: lostIds.length,
    duplicated,
    ...(stray > 0 ? { stray } : {}),
    notificationRows: notifications.length,
    notSent: notSent.length,
    unaccountedTexts: unaccounted,
    messageRows: messages.length,
    failedAttempts: messages.filter((m) => m.status === 'failed').length,
    notFoundAtProvider,
    providerNoAnswer: noAnswer,
    ...(noAnswer > 0 ? { noAnswerAfterMs: noAnswerMs } : {}),
    seconds: Math.round((Date.now() - s.startedAt) / 100) / 10,
    ...extra,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);

  if (
    lostIds.length > 0 ||
    duplicatedIds.length > 0 ||
    notSent.length > 0 ||
    unaccounted > 0 ||
    notifications.length !== expected.length
  ) {
    const evidence = await describe(
      s,
      [...lostIds.slice(0, 20), ...duplicatedIds.slice(0, 20), ...notSent.slice(0, 20).map((n) => n.id)],
      perPhone,
      expected,
    );
    const file = join(tmpdir(), `rxn-chaos-${s.name}-${Date.now()}.log`);
    writeFileSync(
      file,
      `${JSON.stringify(result, null, 2)}\n\n${evidence}\n\n--- app output ---\n${s.stack.logs()}`,
    );
    process.stdout.write(`${s.name}: evidence and app output in ${file}\n${evidence.slice(0, 6000)}\n`);
  }
  return result;
}

/** Rows behind the notifications that went wrong: notification, its messages and audit attempts, what the carrier got. */
async function describe(
  s: Scenario,
  ids: string[],
  perPhone: Map<string, SandboxMessage[]>,
  expected: Array<{ notificationId: string; phone: string }>,
): Promise<string> {
  const unique = [...new Set(ids)].filter(Boolean);
  if (unique.length === 0) return '';
  const phoneOf = new Map(expected.map((e) => [e.notificationId, e.phone]));
  const notifications = await sql<Record<string, unknown>>(
    s,
    `SELECT id, kind, state, reason, lease_owner, lease_expires_at, created_at, updated_at FROM notifications WHERE id = ANY($1::uuid[])`,
    [unique],
  );
  const messages = await sql<Record<string, unknown>>(
    s,
    `SELECT id, notification_id, notification_ids, status, provider_sid, error_code, created_at, updated_at FROM messages
     WHERE notification_ids && $1::uuid[] ORDER BY created_at`,
    [unique],
  );
  const attempts = await sql<Record<string, unknown>>(
    s,
    `SELECT message_id, notification_id, event, status, provider_sid, error_code, at FROM message_attempts
     WHERE notification_id = ANY($1::uuid[]) ORDER BY id`,
    [unique],
  );
  const jobs = new Map(
    await Promise.all(
      unique.map(async (id) => {
        const job = await s.queue.getJob(id).catch(() => undefined);
        return [
          id,
          job
            ? { state: await job.getState(), attemptsMade: job.attemptsMade, failedReason: job.failedReason }
            : null,
        ] as const;
      }),
    ),
  );
  return unique
    .map((id) => {
      const carrier = (perPhone.get(phoneOf.get(id) ?? '') ?? []).map(({ sid, status, receivedAt }) => ({
        sid,
        status,
        receivedAt,
      }));
      return JSON.stringify(
        {
          notification: notifications.find((n) => n.id === id),
          messages: messages.filter((m) => (m.notification_ids as string[]).includes(id)),
          attempts: attempts.filter((a) => a.notification_id === id),
          job: jobs.get(id),
          carrierReceived: carrier,
        },
        null,
        1,
      );
    })
    .join('\n');
}

/**
 * A snapshot of what is in flight right now: claimed notifications and attempts between intent and result; with
 * `pid`, also the claims still held by that dispatcher process (its worker id starts `dispatcher-<pid>-`).
 */
export async function inFlight(
  s: Scenario,
  pid?: number,
): Promise<{ sending: number; intents: number; heldByStopped?: number }> {
  const [row] = await sql<{ sending: number; intents: number; held: number }>(
    s,
    `SELECT (SELECT count(*)::int FROM notifications WHERE state = 'sending') AS sending,
            (SELECT count(*)::int FROM messages WHERE status = 'intent') AS intents,
            (SELECT count(*)::int FROM notifications WHERE state = 'sending' AND lease_owner LIKE $1) AS held`,
    [`dispatcher-${pid ?? 0}-%`],
  );
  return pid === undefined
    ? { sending: row.sending, intents: row.intents }
    : { sending: row.sending, intents: row.intents, heldByStopped: row.held };
}

/**
 * A disruption proves something only if it lands while sends are going out: some already sent (the stack was
 * working) and not all of them (there was work left for it to break). `sent` is counted at the disruption.
 */
export function expectMidStream(sent: number, total: number): void {
  expect(sent).toBeGreaterThan(0);
  expect(sent).toBeLessThan(total);
}

/** Deletes every key under the prefix (SCAN + UNLINK); returns how many went. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}

/** Redis loses its data: FLUSHALL under CHAOS_GLOBAL=1, else every key of this scenario's prefix. */
export async function wipeRedis(s: Scenario): Promise<string> {
  if (GLOBAL) {
    await s.redis.flushall();
    return 'FLUSHALL';
  }
  const deleted = await deleteKeys(s.redis, s.prefix);
  return `deleted ${deleted} keys under ${s.prefix}:`;
}

/**
 * Postgres goes away under the apps: a real restart of the cluster under CHAOS_GLOBAL=1 (waits until it accepts
 * connections again), else every backend on the scenario's database terminated, twice, a second apart.
 */
export async function disruptPostgres(s: Scenario): Promise<string> {
  if (GLOBAL) {
    const version = readdirSync('/etc/postgresql')[0];
    execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'restart'], {
      stdio: 'ignore',
    });
    await waitFor(
      'postgres accepting connections',
      async () => {
        const probe = new Pool({ connectionString: ADMIN_URL, max: 1 });
        probe.on('error', () => undefined);
        try {
          await probe.query('SELECT 1');
          return true;
        } finally {
          await probe.end();
        }
      },
      60000,
    );
    return `pg_ctlcluster ${version} main restart`;
  }
  const terminated: number[] = [];
  for (let round = 0; round < 2; round++) {
    if (round > 0) await sleep(1000);
    const admin = new Pool({ connectionString: ADMIN_URL, max: 1 });
    admin.on('error', () => undefined);
    try {
      const { rows } = await admin.query<{ n: number }>(
        `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
        [s.stack.database.name],
      );
      terminated.push(rows[0].n);
    } finally {
      await admin.end();
    }
  }
  return `terminated ${terminated.join(' + ')} backends on ${s.stack.database.name}`;
}

/** An admin API key, made with the CLI as an operator would. */
export function adminKey(s: Scenario): string {
  const created = s.stack.cli('api-key', 'create', '--role', 'admin', '--label', `chaos ${s.name}`);
  if (created.status !== 0) throw new Error(`api-key create failed: ${created.stderr}`);
  return created.stdout.trim().split('\n').pop() ?? '';
}

/** Runs `work` over `items` with at most `limit` in flight. */
export async function pooled<T>(
  items: T[],
  limit: number,
  work: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        await work(items[index], index);
      }
    }),
  );
}
