import { DataSource } from 'typeorm';
import { createTestDatabase, type TestDatabase } from '../../../../test/helpers/database';
import { given, type PatientFixture } from '../../../../test/helpers/given';
import { verifyChain } from '../audit/audit-chain';
import { ConfigError, loadConfig } from '../config/config';
import { KeyRing } from '../crypto/key-ring';
import { dataSourceOptions } from '../database/data-source';
import { purgeMessageBodies } from './retention';

describe('retention settings', () => {
  it('keeps message bodies 90 days and audit records at least 6 years by default', () => {
    expect(loadConfig({}).retention).toEqual({ messageBodyDays: 90, auditYears: 6 });
    expect(loadConfig({ MESSAGE_BODY_RETENTION_DAYS: '30', AUDIT_RETENTION_YEARS: '10' }).retention).toEqual({
      messageBodyDays: 30,
      auditYears: 10,
    });
  });

  it.each([
    [{ AUDIT_RETENTION_YEARS: '5' }, 'AUDIT_RETENTION_YEARS must be at least 6'],
    [{ AUDIT_RETENTION_YEARS: '0' }, 'AUDIT_RETENTION_YEARS must be at least 6'],
    [{ AUDIT_RETENTION_YEARS: 'forever-and-ever' }, 'AUDIT_RETENTION_YEARS must be a number'],
    [{ MESSAGE_BODY_RETENTION_DAYS: '0' }, 'MESSAGE_BODY_RETENTION_DAYS is out of range'],
    [{ MESSAGE_BODY_RETENTION_DAYS: '1.5' }, 'MESSAGE_BODY_RETENTION_DAYS'],
  ])('refuses %p at boot, naming the variable and not the value', (env, message) => {
    let error: unknown;
    try {
      loadConfig(env);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain(message);
    expect((error as ConfigError).message).not.toContain('forever');
  });
});

describe('message body purge (real Postgres)', () => {
  let database: TestDatabase;
  let db: DataSource;
  let patient: PatientFixture;
  const keys = new KeyRing([{ id: 'k', key: Buffer.alloc(32, 3) }], Buffer.alloc(32, 4));
  const now = new Date('2026-06-01T12:00:00Z');
  const daysAgo = (days: number) => new Date(now.getTime() - days * 86_400_000);

  const message = async (createdAt: Date) => {
    const { notificationId } = await given(db, keys).notice(patient);
    const [row] = await db.query<{ id: string }[]>(
      `WITH message AS (
         INSERT INTO messages (notification_id, notification_ids, pharmacy_id, patient_id, channel, to_enc, from_number, body_enc,
                               provider_sid, status, created_at, updated_at)
         VALUES ($1, ARRAY[$1::uuid], $2, $3, 'sms', $4, '+14155550100', $5, 'SM' || md5(random()::text), 'delivered', $6, $6)
         RETURNING id, notification_id),
       attempt AS (
         INSERT INTO message_attempts (message_id, notification_id, event, status) SELECT id, notification_id, 'intent', 'intent' FROM message)
       SELECT id FROM message`,
      [
        notificationId,
        patient.pharmacyId,
        patient.id,
        keys.encrypt(patient.phone),
        keys.encrypt('Your prescription is ready.'),
        createdAt,
      ],
    );
    return row.id;
  };
  const stored = (id: string) =>
    db
      .query<
        { body_enc: string | null; to_enc: string; status: string; provider_sid: string; updated_at: Date }[]
      >(`SELECT body_enc, to_enc, status, provider_sid, updated_at FROM messages WHERE id = $1`, [id])
      .then((rows) => rows[0]);

  beforeAll(async () => {
    database = await createTestDatabase();
    db = await new DataSource(dataSourceOptions(database.url, 4)).initialize();
    const pharmacy = await given(db, keys).pharmacy();
    patient = await given(db, keys).patient(pharmacy, { phone: '+14155556121' });
  });
  afterAll(async () => {
    await db.destroy();
    await database.drop();
  });

  it('erases the bodies of messages older than the retention, in batches, and keeps everything else', async () => {
    const old = await Promise.all([400, 91, 90.001, 200, 365, 120, 95].map((d) => message(daysAgo(d))));
    const recent = await Promise.all([89.999, 30, 0].map((d) => message(daysAgo(d))));
    const before = await Promise.all([...old, ...recent].map(stored));
    const attempts = (await db.query<{ n: number }[]>(`SELECT count(*)::int AS n FROM message_attempts`))[0]
      .n;

    const report = await purgeMessageBodies(db, { bodyRetentionDays: 90, now, batchSize: 3 });
    expect(report).toEqual({ before: daysAgo(90).toISOString(), purgedMessageBodies: old.length });

    for (const [i, id] of old.entries()) {
      const after = await stored(id);
      expect(after.body_enc).toBeNull();
      // Metadata stays, untouched: recipient, status, provider sid, and the time of the last status change.
      expect({ ...after, body_enc: before[i].body_enc }).toEqual(before[i]);
    }
    for (const id of recent) {
      expect(keys.decrypt((await stored(id)).body_enc as string)).toBe('Your prescription is ready.');
    }
    expect((await db.query<{ n: number }[]>(`SELECT count(*)::int AS n FROM message_attempts`))[0].n).toBe(
      attempts,
    );
    expect((await verifyChain(db, 'message_attempts')).broken).toBeNull();
  });

  it('is idempotent, and a shorter retention reaches further', async () => {
    expect(await purgeMessageBodies(db, { bodyRetentionDays: 90, now })).toMatchObject({
      purgedMessageBodies: 0,
    });
    expect(await purgeMessageBodies(db, { bodyRetentionDays: 1, now, batchSize: 2 })).toMatchObject({
      purgedMessageBodies: 2,
    });
    const [left] = await db.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM messages WHERE body_enc IS NOT NULL`,
    );
    expect(left.n).toBe(1);
  });
});
