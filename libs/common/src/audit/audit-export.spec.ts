import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { createTestDatabase, type TestDatabase } from '../../../../test/helpers/database';
import { given, type PatientFixture, type PharmacyFixture } from '../../../../test/helpers/given';
import { KeyRing } from '../crypto/key-ring';
import { dataSourceOptions } from '../database/data-source';
import { canonicalRow, rowHash, type ChainName } from './audit-chain';
import {
  EXPORT_FILES,
  ExportArgumentError,
  exportAudit,
  MANIFEST_FILE,
  parseExportBound,
  parseExportRange,
  type ExportManifest,
} from './audit-export';

describe('audit export dates', () => {
  it('reads a day as the whole UTC day and an instant to the microsecond', () => {
    expect(parseExportBound('2026-03-01', 'from')).toBe('2026-03-01T00:00:00.000000Z');
    expect(parseExportBound('2026-03-01', 'to')).toBe('2026-03-01T23:59:59.999999Z');
    expect(parseExportBound('2026-03-01T10:20:30.1234567Z', 'from')).toBe('2026-03-01T10:20:30.123456Z');
    expect(parseExportBound('2026-03-01T10:20', 'to')).toBe('2026-03-01T10:20:00.000000Z');
    expect(parseExportBound('2026-03-01T01:00:00-05:00', 'from')).toBe('2026-03-01T06:00:00.000000Z');
    expect(parseExportBound('2026-03-01T01:00:00+0530', 'from')).toBe('2026-02-28T19:30:00.000000Z');
    expect(parseExportBound('2024-02-29', 'to')).toBe('2024-02-29T23:59:59.999999Z');
  });

  it.each([
    undefined,
    '',
    'yesterday',
    '2026-02-30',
    '2025-02-29',
    '2026-13-01',
    '2026-1-1',
    '2026-03-01T24:00:00Z',
    '0000-01-01',
    '2026-03-01T10:00:00+25:00',
    '03/01/2026',
  ])('refuses %p naming the option, never echoing the value', (value) => {
    let error: unknown;
    try {
      parseExportBound(value, 'from');
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ExportArgumentError);
    expect((error as Error).message).toMatch(/^--from /);
    if (value) expect((error as Error).message).not.toContain(value);
  });

  it('refuses a range whose start is after its end, and takes a one-day range', () => {
    expect(() => parseExportRange('2026-03-02', '2026-03-01')).toThrow('--from must not be after --to');
    expect(parseExportRange('2026-03-01', '2026-03-01')).toEqual({
      from: '2026-03-01T00:00:00.000000Z',
      to: '2026-03-01T23:59:59.999999Z',
    });
  });
});

describe('audit export (real Postgres)', () => {
  let database: TestDatabase;
  let db: DataSource;
  let out: string;
  const keys = new KeyRing([{ id: 'k', key: Buffer.alloc(32, 1) }], Buffer.alloc(32, 2));
  let pharmacy: PharmacyFixture;
  let patient: PatientFixture;
  const range = parseExportRange('2026-03-01', '2026-03-31');
  const inside = ['2026-03-01T00:00:00Z', '2026-03-15T12:00:00Z', '2026-03-31T23:59:59.999999Z'];
  const outside = ['2026-02-28T23:59:59.999999Z', '2026-04-01T00:00:00Z'];
  const body = 'Main Street Pharmacy: Your prescription is ready for pickup. Reply STOP to opt out.';

  const consentEvent = async (at: string, evidence: string | null) => {
    const [row] = await db.query<{ id: string }[]>(
      `INSERT INTO consent_events (patient_id, pharmacy_id, channel, status, source, actor, at, evidence_mac)
       VALUES ($1, $2, 'sms', 'opted_in', 'paper_form', 'key:test', $3, $4) RETURNING id`,
      [patient.id, pharmacy.id, at, evidence ? keys.evidenceMac(evidence) : null],
    );
    if (evidence) {
      await db.query(`INSERT INTO consent_evidence (consent_event_id, evidence_enc) VALUES ($1, $2)`, [
        row.id,
        keys.encrypt(evidence),
      ]);
    }
  };
  const messageAttempt = async (at: string, sid: string) => {
    const { notificationId } = await given(db, keys).notice(patient);
    const [message] = await db.query<{ id: string }[]>(
      `INSERT INTO messages (notification_id, notification_ids, pharmacy_id, patient_id, channel, to_enc, from_number, body_enc,
                             provider_sid, status, error_code)
       VALUES ($1, ARRAY[$1::uuid], $2, $3, 'sms', $4, '+14155550100', $5, $6, 'undelivered', 30003) RETURNING id`,
      [notificationId, pharmacy.id, patient.id, keys.encrypt(patient.phone), keys.encrypt(body), sid],
    );
    await db.query(
      `INSERT INTO message_attempts (message_id, notification_id, event, status, provider_sid, error_code, at)
       VALUES ($1, $2, 'status', 'undelivered', $3, 30003, $4)`,
      [message.id, notificationId, sid, at],
    );
  };
  const access = (at: string, action: string) =>
    db.query(
      `INSERT INTO access_log (key_id, role, pharmacy_id, patient_id, action, route, at)
       VALUES (gen_random_uuid(), 'auditor', $1, $2, $3, '/v1/patients/x', $4)`,
      [pharmacy.id, patient.id, action, at],
    );

  const lines = async (dir: string, chain: ChainName) =>
    (await readFile(join(dir, EXPORT_FILES[chain]), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  const manifestOf = async (dir: string) =>
    JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')) as ExportManifest;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = await new DataSource(dataSourceOptions(database.url, 4)).initialize();
    out = await mkdtemp(join(tmpdir(), 'rxn-export-'));
    pharmacy = await given(db, keys).pharmacy();
    patient = await given(db, keys).patient(pharmacy, { phone: '+14155556120', firstName: 'Philippa' });
    for (const [i, at] of [...inside, ...outside].entries()) {
      await consentEvent(at, i === 1 ? 'signed enrollment form, witnessed by R. Okafor' : null);
      await messageAttempt(at, `SM${String(i).padStart(32, '0')}`);
      await access(at, inside.includes(at) ? 'patient.read' : 'outside.read');
    }
  });
  afterAll(async () => {
    await db.destroy();
    await database.drop();
    await rm(out, { recursive: true, force: true });
  });

  it('writes the three chains in the range, each row with seq, prev_hash and hash, and a manifest of their SHA-256', async () => {
    const dir = join(out, 'march', 'nested');
    const manifest = await exportAudit(db, keys, {
      range,
      outDir: dir,
      now: () => new Date('2026-04-02T08:00:00Z'),
    });

    expect((await readdir(dir)).sort()).toEqual([
      'access_log.jsonl',
      'consent_events.jsonl',
      'manifest.json',
      'message_attempts.jsonl',
    ]);
    expect(await manifestOf(dir)).toEqual(manifest);
    expect(manifest).toMatchObject({ generatedAt: '2026-04-02T08:00:00.000Z', range });
    for (const [name, file] of Object.entries(manifest.files)) {
      const content = await readFile(join(dir, name));
      expect(createHash('sha256').update(content).digest('hex')).toBe(file.sha256);
      expect(file.bytes).toBe(content.length);
      expect(file.rows).toBe(content.toString('utf8').split('\n').filter(Boolean).length);
      expect((await stat(join(dir, name))).mode & 0o777).toBe(0o600);
    }

    for (const chain of Object.keys(EXPORT_FILES) as ChainName[]) {
      const rows = await lines(dir, chain);
      // given.patient wrote no consent event (no consent asked for), so only the ones above are in the chains.
      expect(rows.map((r) => r.at)).toEqual([
        '2026-03-01T00:00:00.000000Z',
        '2026-03-15T12:00:00.000000Z',
        '2026-03-31T23:59:59.999999Z',
      ]);
      expect(manifest.files[EXPORT_FILES[chain]]).toMatchObject({
        rows: 3,
        firstSeq: rows[0].seq,
        lastSeq: rows[2].seq,
      });
      // Every line can be verified on its own, without rxnotify: the hash of its prev_hash and chained columns.
      for (const row of rows) {
        expect(
          rowHash(row.prev_hash as string, canonicalRow(chain, row as Record<string, string | null>)),
        ).toBe(row.hash);
      }
      const [head] = await db.query<{ seq: string; hash: string }[]>(
        `SELECT seq::text, hash FROM audit_chain_heads WHERE chain = $1`,
        [chain],
      );
      expect(manifest.chains[chain]).toEqual({
        head,
        verify: { intact: true, rows: Number(head.seq), head: head.hash, broken: null },
      });
    }
  });

  it('decrypts consent evidence and message recipients, and never writes a message body', async () => {
    const dir = join(out, 'phi');
    await exportAudit(db, keys, { range, outDir: dir });
    const consents = await lines(dir, 'consent_events');
    expect(consents.map((c) => c.evidence)).toEqual([
      null,
      'signed enrollment form, witnessed by R. Okafor',
      null,
    ]);
    expect(consents[1]).toMatchObject({
      patient_id: patient.id,
      pharmacy_id: pharmacy.id,
      channel: 'sms',
      status: 'opted_in',
      source: 'paper_form',
      actor: 'key:test',
    });

    const attempts = await lines(dir, 'message_attempts');
    expect(attempts[0]).toMatchObject({
      event: 'status',
      status: 'undelivered',
      provider_sid: `SM${'0'.repeat(32)}`,
      error_code: '30003',
      message: {
        channel: 'sms',
        to: '+14155556120',
        from: '+14155550100',
        providerSid: `SM${'0'.repeat(32)}`,
        status: 'undelivered',
        errorCode: 30003,
        patientId: patient.id,
      },
    });
    const text = await readFile(join(dir, EXPORT_FILES.message_attempts), 'utf8');
    expect(text).not.toContain('Your prescription is ready');
    expect(text).not.toContain('body');

    const reads = await lines(dir, 'access_log');
    expect(reads.map((r) => r.action)).toEqual(['patient.read', 'patient.read', 'patient.read']);
  });

  it('reads in pages without changing a byte', async () => {
    const whole = await exportAudit(db, keys, { range, outDir: join(out, 'whole') });
    const paged = await exportAudit(db, keys, { range, outDir: join(out, 'paged'), pageSize: 1 });
    expect(paged.files).toEqual(whole.files);
  });

  it('gives empty files for a range with nothing in it', async () => {
    const manifest = await exportAudit(db, keys, {
      range: parseExportRange('2030-01-01', '2030-01-02'),
      outDir: join(out, 'empty'),
    });
    for (const file of Object.values(manifest.files)) {
      expect(file).toEqual({
        sha256: createHash('sha256').digest('hex'),
        rows: 0,
        bytes: 0,
        firstSeq: null,
        lastSeq: null,
      });
    }
  });

  it('refuses to overwrite any file, leaving the earlier export as it was', async () => {
    const dir = join(out, 'twice');
    const first = await exportAudit(db, keys, { range, outDir: dir });
    await expect(exportAudit(db, keys, { range, outDir: dir })).rejects.toThrow(/never overwrites/);
    expect(await manifestOf(dir)).toEqual(first);

    const partial = join(out, 'partial');
    await exportAudit(db, keys, { range, outDir: partial });
    await rm(join(partial, MANIFEST_FILE));
    await expect(exportAudit(db, keys, { range, outDir: partial })).rejects.toThrow(ExportArgumentError);
  });

  it('records a broken chain in the manifest', async () => {
    const [victim] = await db.query<{ id: string; seq: string }[]>(
      `SELECT id::text, seq::text FROM access_log ORDER BY seq LIMIT 1`,
    );
    await db.query(`ALTER TABLE access_log DISABLE TRIGGER access_log_append_only`);
    await db.query(`UPDATE access_log SET action = 'forged' WHERE id = $1`, [victim.id]);
    await db.query(`ALTER TABLE access_log ENABLE TRIGGER access_log_append_only`);
    const manifest = await exportAudit(db, keys, { range, outDir: join(out, 'broken') });
    expect(manifest.chains.access_log.verify).toMatchObject({
      intact: false,
      broken: { id: victim.id, seq: victim.seq },
    });
    expect(manifest.chains.consent_events.verify.intact).toBe(true);
  });
});
