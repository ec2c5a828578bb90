import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { KeyRing } from '@rxnotify/common/crypto/key-ring';
import { dataSourceOptions } from '@rxnotify/common/database/data-source';
import { TEST_INDEX_KEY, TEST_PHI_KEYS } from '../../../test/helpers/config';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/database';
import { given, type PatientFixture } from '../../../test/helpers/given';

const ROOT = join(__dirname, '../../..');
const CLI = join(ROOT, 'dist/apps/cli/src/main.js');

/** The operator commands of issue 5, run as an operator runs them: the built CLI in its own process. */
describe('cli: audit export and retention purge (built CLI, real Postgres)', () => {
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
});
