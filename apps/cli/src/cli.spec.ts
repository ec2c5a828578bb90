import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { findPrincipal } from '@rxnotify/common/auth/api-keys';
import { KeyRing } from '@rxnotify/common/crypto/key-ring';
import { dataSourceOptions } from '@rxnotify/common/database/data-source';
import { TEST_INDEX_KEY, TEST_PHI_KEYS } from '../../../test/helpers/config';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/database';
import { given, type PatientFixture } from '../../../test/helpers/given';

const ROOT = join(__dirname, '../../..');
const CLI = join(ROOT, 'dist/apps/cli/src/main.js');

/** The operator commands of issue 5, run as an operator runs them: the built CLI in its own process. */
describe('cli: audit export and verify, retention purge, key rotation, API keys (built CLI, real Postgres)', () => {
  let database: TestDatabase;
  let db: DataSource;
  let out: string;
  let patient: PatientFixture;
  const keys = new KeyRing([{ id: 'test1', key: Buffer.alloc(32, 7) }], Buffer.alloc(32, 8));

  const cli = (args: string[], env: Record<string, string> = {}) => {
    const result = spawnSync(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH ?? '',
        NODE_ENV: 'test',
        DATABASE_URL: database.url,
        PHI_ENCRYPTION_KEYS: TEST_PHI_KEYS,
        PHI_INDEX_KEY: TEST_INDEX_KEY,
        ...env,
      },
    });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  };

  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` (npm test does)`);
    database = await createTestDatabase();
    db = await new DataSource(dataSourceOptions(database.url, 2)).initialize();
    out = await mkdtemp(join(tmpdir(), 'rxn-cli-'));
    const pharmacy = await given(db, keys).pharmacy();
    patient = await given(db, keys).patient(pharmacy, { phone: '+14155556122', consent: ['sms'] });
  });
  afterAll(async () => {
    await db?.destroy();
    await database?.drop();
    await rm(out, { recursive: true, force: true });
  });

  describe('audit export', () => {
    it.each([
      [[], /required option '--from <date>'/],
      [['--from', '2026-01-01', '--out', 'x'], /required option '--to <date>'/],
      [['--from', '2026-01-01', '--to', '2026-01-02'], /required option '--out <dir>'/],
      [
        ['--from', 'last tuesday', '--to', '2026-01-02', '--out', 'x'],
        /option '--from <date>' argument .* is invalid\. must be a date \(YYYY-MM-DD\)/,
      ],
      [
        ['--from', '2026-01-01', '--to', '2026-02-30', '--out', 'x'],
        /option '--to <date>' argument .* is invalid/,
      ],
    ])('refuses %p with a clear error and a non-zero exit', (args, message) => {
      const result = cli(['audit', 'export', ...args]);
      expect(result.status).not.toBe(0);
      expect(result.stderr).toMatch(message);
    });

    it('refuses --from after --to', () => {
      const result = cli([
        'audit',
        'export',
        '--from',
        '2026-02-01',
        '--to',
        '2026-01-31',
        '--out',
        join(out, 'never'),
      ]);
      expect(result.status).toBe(1);
      expect(result.stderr).toContain('--from must not be after --to');
      expect(existsSync(join(out, 'never'))).toBe(false);
    });

    it('writes the files and the manifest into a new directory, then refuses to overwrite them', async () => {
      const dir = join(out, 'a', 'b');
      const today = new Date().toISOString().slice(0, 10);
      const first = cli(['audit', 'export', '--from', '2020-01-01', '--to', today, '--out', dir]);
      expect(first.stderr).toBe('');
      expect(first.status).toBe(0);
      expect(first.stdout).toMatch(/consent_events\.jsonl: 1 rows, sha256 [0-9a-f]{64}/);
      expect((await readdir(dir)).sort()).toEqual([
        'access_log.jsonl',
        'consent_events.jsonl',
        'manifest.json',
        'message_attempts.jsonl',
      ]);
      const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
      expect(manifest.chains.consent_events.verify).toMatchObject({ intact: true, rows: 1 });
      expect(JSON.parse((await readFile(join(dir, 'consent_events.jsonl'), 'utf8')).trim())).toMatchObject({
        patient_id: patient.id,
        seq: '1',
      });

      const again = cli(['audit', 'export', '--from', '2020-01-01', '--to', today, '--out', dir]);
      expect(again.status).toBe(1);
      expect(again.stderr).toMatch(/never overwrites/);
      expect(JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'))).toEqual(manifest);
    });

    it('refuses an --out that is a file', async () => {
      const file = join(out, 'plain-file');
      await writeFile(file, 'x');
      const result = cli(['audit', 'export', '--from', '2026-01-01', '--to', '2026-01-02', '--out', file]);
      expect(result.status).toBe(1);
      expect(result.stderr).toContain('--out must be a directory');
    });
  });

  describe('retention purge', () => {
    it('erases old message bodies and reports that no audit record was deleted', async () => {
      const { notificationId } = await given(db, keys).notice(patient);
      const [message] = await db.query<{ id: string }[]>(
        `INSERT INTO messages (notification_id, notification_ids, pharmacy_id, patient_id, channel, to_enc, from_number, body_enc, status, created_at)
         VALUES ($1, ARRAY[$1::uuid], $2, $3, 'sms', $4, '+14155550100', $5, 'delivered', now() - interval '31 days') RETURNING id`,
        [
          notificationId,
          patient.pharmacyId,
          patient.id,
          keys.encrypt(patient.phone),
          keys.encrypt('old text'),
        ],
      );
      const kept = cli(['retention', 'purge']);
      expect(kept.status).toBe(0);
      expect(JSON.parse(kept.stdout)).toMatchObject({
        purgedMessageBodies: 0,
        messageBodyRetentionDays: 90,
        auditRetentionYears: 6,
        auditRecordsDeleted: 0,
      });

      const purged = cli(['retention', 'purge'], { MESSAGE_BODY_RETENTION_DAYS: '30' });
      expect(purged.status).toBe(0);
      expect(JSON.parse(purged.stdout)).toMatchObject({
        purgedMessageBodies: 1,
        messageBodyRetentionDays: 30,
      });
      const [row] = await db.query(`SELECT body_enc, to_enc FROM messages WHERE id = $1`, [message.id]);
      expect(row.body_enc).toBeNull();
      expect(keys.decrypt(row.to_enc)).toBe(patient.phone);
    });

    it('refuses an audit retention shorter than six years, naming the variable', () => {
      const result = cli(['retention', 'purge'], { AUDIT_RETENTION_YEARS: '5' });
      expect(result.status).toBe(1);
      expect(result.stderr).toContain('AUDIT_RETENTION_YEARS must be at least 6');
    });
  });

  describe('audit verify', () => {
    /** A change made as superuser with the table's guard trigger off, as an attacker with the database would. */
    const behindTheTrigger = (table: string, trigger: string, sql: string, params: unknown[]) =>
      db.transaction(async (tx) => {
        await tx.query(`ALTER TABLE ${table} DISABLE TRIGGER ${trigger}`);
        await tx.query(sql, params);
        await tx.query(`ALTER TABLE ${table} ENABLE TRIGGER ${trigger}`);
      });

    it('exits 0 on intact chains, and 1 naming the row changed behind the trigger', async () => {
      await db.query(
        `INSERT INTO access_log (key_id, role, pharmacy_id, patient_id, action, route)
         VALUES (gen_random_uuid(), 'staff', $1, $2, 'patient.read', 'GET /v1/patients/x')`,
        [patient.pharmacyId, patient.id],
      );
      const intact = cli(['audit', 'verify']);
      expect(intact.status).toBe(0);
      expect(intact.stdout).toMatch(/^access_log: intact, [1-9]\d* rows/m);
      expect(intact.stdout).toMatch(/^consent_events: intact, [1-9]\d* rows/m);
      expect(intact.stdout).toContain('consent_evidence: intact');

      const [row] = await db.query<{ id: string; route: string }[]>(
        `SELECT id::text, route FROM access_log WHERE hash IS NOT NULL ORDER BY seq DESC LIMIT 1`,
      );
      const update = `UPDATE access_log SET route = $2 WHERE id = $1`;
      await behindTheTrigger('access_log', 'access_log_append_only', update, [
        row.id,
        'GET /v1/somewhere-else',
      ]);
      const broken = cli(['audit', 'verify']);
      expect(broken.status).toBe(1);
      expect(broken.stdout).toContain(`access_log: BROKEN at id ${row.id} `);
      expect(broken.stdout).toContain('hash does not match the row content');

      await behindTheTrigger('access_log', 'access_log_append_only', update, [row.id, row.route]);
      expect(cli(['audit', 'verify']).status).toBe(0);
    });

    it('exits 1 naming the consent event whose evidence text was replaced', async () => {
      const [event] = await db.query<{ id: string }[]>(
        `INSERT INTO consent_events (patient_id, pharmacy_id, channel, status, source, actor, evidence_mac)
         VALUES ($1, $2, 'voice', 'opted_in', 'paper_form', 'key:test', $3) RETURNING id::text`,
        [patient.id, patient.pharmacyId, keys.evidenceMac('Signed form #88')],
      );
      await db.query(`INSERT INTO consent_evidence (consent_event_id, evidence_enc) VALUES ($1, $2)`, [
        event.id,
        keys.encrypt('Signed form #88'),
      ]);
      expect(cli(['audit', 'verify']).status).toBe(0);

      // Rewriting the ciphertext is allowed (key rotation does it); a different text is not.
      await db.query(`UPDATE consent_evidence SET evidence_enc = $2 WHERE consent_event_id = $1`, [
        event.id,
        keys.encrypt('Verbal, unwitnessed'),
      ]);
      const broken = cli(['audit', 'verify']);
      expect(broken.status).toBe(1);
      expect(broken.stdout).toContain(`consent_evidence: BROKEN at consent event id ${event.id} `);

      await db.query(`UPDATE consent_evidence SET evidence_enc = $2 WHERE consent_event_id = $1`, [
        event.id,
        keys.encrypt('Signed form #88'),
      ]);
      expect(cli(['audit', 'verify']).status).toBe(0);
    });
  });

  describe('keys rotate', () => {
    const next = { id: 'k2', key: Buffer.alloc(32, 11) };
    const nextEntry = `k2:${next.key.toString('base64')}`;

    it('re-encrypts every PHI column under the first key, and the old key can then be dropped', async () => {
      const rotated = cli(['keys', 'rotate'], { PHI_ENCRYPTION_KEYS: `${nextEntry},${TEST_PHI_KEYS}` });
      expect(rotated.status).toBe(0);
      const report = JSON.parse(rotated.stdout) as { currentKey: string; rotated: Record<string, number> };
      expect(report.currentKey).toBe('k2');
      expect(report.rotated['patients.phone_enc']).toBeGreaterThan(0);
      expect(report.rotated['consent_evidence.evidence_enc']).toBeGreaterThan(0);

      const onlyNext = new KeyRing([next], Buffer.alloc(32, 8));
      const [stored] = await db.query<{ phone_enc: string }[]>(
        `SELECT phone_enc FROM patients WHERE id = $1`,
        [patient.id],
      );
      expect(stored.phone_enc).toMatch(/^v1\.k2\./);
      expect(onlyNext.decrypt(stored.phone_enc)).toBe(patient.phone);
      // The evidence still proves unchanged, and the CLI works with the new key alone.
      expect(cli(['audit', 'verify'], { PHI_ENCRYPTION_KEYS: nextEntry }).status).toBe(0);
      expect(JSON.parse(cli(['keys', 'rotate'], { PHI_ENCRYPTION_KEYS: nextEntry }).stdout)).toMatchObject({
        rotated: { 'patients.phone_enc': 0, 'consent_evidence.evidence_enc': 0 },
      });

      // Back under the test key, for the rest of this file.
      expect(cli(['keys', 'rotate'], { PHI_ENCRYPTION_KEYS: `${TEST_PHI_KEYS},${nextEntry}` }).status).toBe(
        0,
      );
      expect(cli(['audit', 'verify']).status).toBe(0);
    });
  });

  describe('api-key create and revoke', () => {
    it('prints a new key once, and after revoke (by id, or by the key) it authenticates nothing', async () => {
      for (const by of ['id', 'key'] as const) {
        const created = cli(['api-key', 'create', '--role', 'admin', '--label', `break-glass ${by}`]);
        expect(created.status).toBe(0);
        const [summary, key] = created.stdout.trim().split('\n');
        const id = /created admin key ([0-9a-f-]{36}) /.exec(summary)?.[1] ?? '';
        expect(await findPrincipal(db, key)).toMatchObject({ keyId: id, role: 'admin', pharmacyId: null });
        const [row] = await db.query<{ key_hash: string }[]>(`SELECT key_hash FROM api_keys WHERE id = $1`, [
          id,
        ]);
        expect(row.key_hash).not.toContain(key);

        const revoked = cli(['api-key', 'revoke', by === 'id' ? id : key]);
        expect(revoked.status).toBe(0);
        expect(revoked.stdout).toBe('revoked\n');
        expect(await findPrincipal(db, key)).toBeNull();
        const again = cli(['api-key', 'revoke', id]);
        expect(again.status).toBe(1);
        expect(again.stderr).toContain('no live key matches');
      }
    });
  });
});
