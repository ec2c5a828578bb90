import { verifyConsentEvidence } from '@rxnotify/common/audit/audit-chain';
import { FakeClock } from '@rxnotify/common/clock/clock';
import { KeyRing } from '@rxnotify/common/crypto/key-ring';
import { ENCRYPTED_COLUMNS, rotateKeys } from '@rxnotify/common/crypto/rotate';
import { TEST_INDEX_KEY, TEST_PHI_KEYS } from '../../../../test/helpers/config';
import { createTestDatabase, type TestDatabase } from '../../../../test/helpers/database';
import { given } from '../../../../test/helpers/given';
import { startDispatcherWithSandbox, type DispatcherUnderTest } from '../../../../test/helpers/dispatcher';
import { waitFor } from '../../../../test/helpers/wait';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '@rxnotify/common/database/data-source';

/** `keys rotate` while the dispatcher sends: the old key keeps decrypting, everything ends under the new one. */
describe('key rotation during sends', () => {
  const clock = new FakeClock(new Date('2026-06-10T16:00:00Z'));
  const newKey = `test2:${Buffer.alloc(32, 9).toString('base64')}`;
  let database: TestDatabase;
  let t: DispatcherUnderTest;

  beforeAll(async () => {
    database = await createTestDatabase();
    // The apps restarted with the new key first and the old one still listed.
    t = await startDispatcherWithSandbox({
      clock,
      database,
      env: { PHI_ENCRYPTION_KEYS: `${newKey},${TEST_PHI_KEYS}` },
    });
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });
  it('delivers every message while rotating, and leaves nothing under the old key', async () => {
    // Patients written before the rotation, under the old key alone.
    const oldDb = await new DataSource(dataSourceOptions(database.url, 2)).initialize();
    const oldKeys = new KeyRing(
      [{ id: 'test1', key: Buffer.from(TEST_PHI_KEYS.split(':')[1], 'base64') }],
      Buffer.from(TEST_INDEX_KEY, 'base64'),
    );
    const before = given(oldDb, oldKeys);
    const pharmacy = await before.pharmacy({ settings: { sendRatePerSecond: 1000 } });
    const patients = [];
    for (let i = 0; i < 40; i++)
      patients.push(await before.patient(pharmacy, { phone: `+1415555${5000 + i}`, consent: ['sms'] }));
    const notices = [];
    for (const p of patients) notices.push(await before.notice(p, { dueAt: clock.now() }));
    // Consent evidence for some of them, as the consent API writes it: ciphertext beside a MAC-bearing event.
    const evidenceOf = (i: number) => `paper form #${1000 + i}, signed at the counter`;
    for (const [i, p] of patients.slice(0, 10).entries()) {
      const [event] = await oldDb.query<{ id: string }[]>(
        `INSERT INTO consent_events (patient_id, pharmacy_id, channel, status, source, actor, evidence_mac)
         VALUES ($1, $2, 'voice', 'opted_in', 'paper_form', 'key:test', $3) RETURNING id`,
        [p.id, p.pharmacyId, oldKeys.evidenceMac(evidenceOf(i))],
      );
      await oldDb.query(`INSERT INTO consent_evidence (consent_event_id, evidence_enc) VALUES ($1, $2)`, [
        event.id,
        oldKeys.encrypt(evidenceOf(i)),
      ]);
    }
    const [{ n: oldEvidence }] = await oldDb.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM consent_evidence WHERE evidence_enc LIKE 'v1.test1.%'`,
    );
    expect(oldEvidence).toBe(10);
    await oldDb.destroy();

    const queue = t.queue;
    await Promise.all([
      queue.enqueue(notices.map((n) => ({ notificationId: n.notificationId }))),
      rotateKeys(t.db, t.keys, 7),
      rotateKeys(t.db, t.keys, 5),
    ]);
    await waitFor('all delivered', async () => {
      const [{ n }] = await t.db.query(
        `SELECT count(*)::int AS n FROM notifications WHERE state IN ('sent', 'delivered')`,
      );
      return n === 40;
    });
    await rotateKeys(t.db, t.keys);

    for (const p of patients) expect(t.sandbox.messages().filter((m) => m.to === p.phone)).toHaveLength(1);
    for (const { table, columns } of ENCRYPTED_COLUMNS) {
      for (const column of columns) {
        const [{ old }] = await t.db.query(
          `SELECT count(*)::int AS old FROM ${table} WHERE ${column} LIKE 'v1.test1.%'`,
        );
        expect(`${table}.${column}: ${old}`).toBe(`${table}.${column}: 0`);
      }
    }
    const evidence = await t.db.query<{ patient_id: string; evidence_enc: string }[]>(
      `SELECT e.patient_id, v.evidence_enc FROM consent_evidence v JOIN consent_events e ON e.id = v.consent_event_id`,
    );
    expect(evidence).toHaveLength(10);
    for (const row of evidence) {
      const i = patients.findIndex((p) => p.id === row.patient_id);
      expect(row.evidence_enc).toMatch(/^v1\.test2\./);
      expect(t.keys.decrypt(row.evidence_enc)).toBe(evidenceOf(i));
    }
    // Re-encrypted, not altered: every evidence still matches the MAC chained in its event.
    expect(await verifyConsentEvidence(t.db, t.keys)).toBeNull();
    const messages = await t.db.query(`SELECT to_enc, body_enc FROM messages`);
    for (const m of messages) {
      expect(t.keys.decrypt(m.to_enc)).toMatch(/^\+1415555/);
      expect(t.keys.decrypt(m.body_enc)).toContain('Reply STOP');
    }
  });
});
