import request from 'supertest';
import type { TestApp } from '../../../../test/helpers/app';
import type { PatientFixture, PharmacyFixture } from '../../../../test/helpers/given';
import {
  hoursAgo,
  startSchedulerWithPatient,
  type SchedulerUnderTest,
} from '../../../../test/helpers/scheduler';
import { FILL_COLUMNS } from './fills-csv';
import { IMPORT_CHUNK_ROWS } from './fills-import.service';

type Result = { externalId: string | null; id?: string; outcome: string; errors?: string[]; line: number };

describe('fills CSV import (scheduler, real Postgres and Redis)', () => {
  let t: TestApp;
  let pharmacy: PharmacyFixture;
  let patient: PatientFixture;
  let staff: string;

  let scheduler: SchedulerUnderTest;

  beforeAll(async () => {
    scheduler = await startSchedulerWithPatient();
    ({ t, pharmacy, patient, staff } = scheduler);
  });
  afterAll(() => scheduler.close());

  let serial = 0;
  /** One CSV line in FILL_COLUMNS order; values are written as given (quote them yourself). */
  const row = (overrides: Record<string, string> = {}) => {
    const values: Record<string, string> = {
      pharmacyId: pharmacy.id,
      externalId: `C-${Date.now().toString(36)}-${serial++}`,
      patientExternalId: patient.externalId,
      rxNumber: 'RX200',
      fillNumber: '0',
      drugName: 'Atorvastatin 20 mg',
      ndc: '',
      quantity: '30',
      daysSupply: '30',
      refillsRemaining: '2',
      filledAt: hoursAgo(3),
      status: 'in_progress',
      readyAt: '',
      pickedUpAt: '',
      maintenance: 'yes',
      therapeuticClass: '',
      ...overrides,
    };
    return FILL_COLUMNS.map((name) => values[name]).join(',');
  };
  const header = FILL_COLUMNS.join(',');
  const csv = (...lines: string[]) => [header, ...lines].join('\n') + '\n';
  const post = (body: string, key = staff, type = 'text/csv') =>
    request(t.http)
      .post('/v1/fills/import')
      .set('Authorization', `Bearer ${key}`)
      .set('Content-Type', type)
      .send(body);
  const countFills = async (): Promise<number> =>
    (await t.db.query(`SELECT count(*)::int AS n FROM fills`))[0].n;

  it('reports every record in file order, with the line it starts on, applying the good ones', async () => {
    const body = csv(
      row({ externalId: 'A-1' }),
      row({ externalId: 'A-2', daysSupply: '400' }),
      '',
      row({ externalId: 'A-3', drugName: '"Metformin 500 mg,\nextended release"', ndc: '00093-1048-01' }),
      row({ externalId: 'A-4', daysSupply: 'thirty' }),
      row({ externalId: 'A-5', maintenance: 'perhaps' }),
      row({ externalId: 'A-6', status: 'ready', readyAt: hoursAgo(1), maintenance: 'FALSE' }),
      'only,three,fields',
      row({ externalId: 'A-8', patientExternalId: 'nobody' }),
      row({ externalId: 'A-9', quantity: '' }),
    );
    const results: Result[] = (await post(body).expect(200)).body.results;

    expect(results.map((r) => [r.externalId, r.outcome, r.line])).toEqual([
      ['A-1', 'created', 2],
      ['A-2', 'rejected', 3],
      ['A-3', 'created', 5], // a blank line before it, and its quoted drug name spans lines 5 and 6
      ['A-4', 'rejected', 7],
      ['A-5', 'rejected', 8],
      ['A-6', 'created', 9],
      ['three', 'rejected', 10], // too short, but its second field still names it
      ['A-8', 'rejected', 11],
      ['A-9', 'rejected', 12],
    ]);
    const errors = (externalId: string | null, line: number) =>
      results.find((r) => r.externalId === externalId && r.line === line)?.errors?.join('; ');
    expect(errors('A-2', 3)).toContain('daysSupply');
    expect(errors('A-4', 7)).toContain('daysSupply must be an integer number');
    expect(errors('A-5', 8)).toContain('maintenance must be a boolean');
    expect(errors('three', 10)).toBe(`record has 3 fields but the header has ${FILL_COLUMNS.length} columns`);
    expect(errors('A-8', 11)).toContain('patientExternalId');
    expect(errors('A-9', 12)).toContain('quantity');

    const stored = await t.db.query(
      `SELECT external_id, drug_name, ndc, maintenance, status FROM fills WHERE external_id IN ('A-1', 'A-3', 'A-6') ORDER BY external_id`,
    );
    expect(stored).toEqual([
      {
        external_id: 'A-1',
        drug_name: 'Atorvastatin 20 mg',
        ndc: null,
        maintenance: true,
        status: 'in_progress',
      },
      {
        external_id: 'A-3',
        drug_name: 'Metformin 500 mg,\nextended release',
        ndc: '00093-1048-01',
        maintenance: true,
        status: 'in_progress',
      },
      { external_id: 'A-6', drug_name: 'Atorvastatin 20 mg', ndc: null, maintenance: false, status: 'ready' },
    ]);
    const [ready] = await t.db.query(
      `SELECT n.kind FROM notifications n JOIN fills f ON f.id = ANY(n.fill_ids) WHERE f.external_id = 'A-6'`,
    );
    expect(ready).toEqual({ kind: 'ready' });
  });

  it('counts lines the way an editor does in a CRLF file with a BOM and any column order', async () => {
    const columns = [...FILL_COLUMNS].reverse();
    const line = (values: Record<string, string>) => columns.map((name) => values[name] ?? '').join(',');
    const base = {
      pharmacyId: pharmacy.id,
      patientExternalId: patient.externalId,
      rxNumber: 'RX9',
      fillNumber: '1',
      drugName: 'Losartan',
      quantity: '90',
      daysSupply: '90',
      refillsRemaining: '1',
      filledAt: hoursAgo(5),
      status: 'picked_up',
    };
    const body =
      '\ufeff' +
      [
        columns.join(','),
        line({ ...base, externalId: 'W-1', drugName: '"Losartan\r\n50 mg"' }),
        line({ ...base, externalId: 'W-2', daysSupply: '0' }),
        line({ ...base, externalId: 'W-3' }) + ',"a stray\r\nfield"',
        line({ ...base, externalId: 'W-4' }),
      ].join('\r\n');
    const results: Result[] = (await post(body).expect(200)).body.results;
    expect(results.map((r) => [r.externalId, r.outcome, r.line])).toEqual([
      ['W-1', 'created', 2],
      ['W-2', 'rejected', 4],
      ['W-3', 'rejected', 5],
      ['W-4', 'created', 7],
    ]);
  });

  it('treats a re-sent file as no change', async () => {
    const body = csv(row(), row({ status: 'ready', readyAt: hoursAgo(1) }));
    const first: Result[] = (await post(body).expect(200)).body.results;
    expect(first.map((r) => r.outcome)).toEqual(['created', 'created']);
    const ids = first.map((r) => r.id);
    const before = await t.db.query(`SELECT id, updated_at FROM fills WHERE id = ANY($1) ORDER BY id`, [ids]);
    const [{ n: notices }] = await t.db.query(`SELECT count(*)::int AS n FROM notifications`);

    const again: Result[] = (await post(body).expect(200)).body.results;
    expect(again.map((r) => [r.outcome, r.id])).toEqual(ids.map((id) => ['updated', id]));
    expect(
      await t.db.query(`SELECT id, updated_at FROM fills WHERE id = ANY($1) ORDER BY id`, [ids]),
    ).toEqual(before);
    expect((await t.db.query(`SELECT count(*)::int AS n FROM notifications`))[0].n).toBe(notices);
  });

  it('answers 422 naming an unknown or a missing column, before applying anything', async () => {
    const before = await countFills();
    const unknown = await post(`${header},DaysSupply,colour\n${row()},30,red\n`).expect(422);
    expect(unknown.body.message).toEqual([
      'unknown column "DaysSupply" (did you mean "daysSupply"?)',
      'unknown column "colour"',
    ]);

    const withoutStatus = FILL_COLUMNS.filter((name) => name !== 'status');
    const missing = await post(`${withoutStatus.join(',')}\n${row()}\n`).expect(422);
    expect(missing.body.message).toEqual(['missing column "status"']);

    const optionalLeftOut = FILL_COLUMNS.filter(
      (name) => !['ndc', 'readyAt', 'pickedUpAt', 'maintenance', 'therapeuticClass'].includes(name),
    );
    const values = row().split(',');
    const short = optionalLeftOut.map((name) => values[FILL_COLUMNS.indexOf(name)]).join(',');
    const ok: Result[] = (await post(`${optionalLeftOut.join(',')}\n${short}\n`).expect(200)).body.results;
    expect(ok).toEqual([expect.objectContaining({ outcome: 'created', line: 2 })]);

    expect((await post('').expect(422)).body.message).toEqual([expect.stringContaining('empty')]);
    expect((await post('\n\n').expect(422)).body.message).toEqual([expect.stringContaining('empty')]);
    const brokenHeader = await post(`pharmacyId,"externalId\n${row()}\n`).expect(422);
    expect(brokenHeader.body.message).toEqual([
      expect.stringMatching(/^the header row is malformed CSV: .*unclosed quote/),
    ]);
    expect(await countFills()).toBe(before + 1);
  });

  it('answers 415 to a body that is not CSV', async () => {
    const json = await request(t.http)
      .post('/v1/fills/import')
      .set('Authorization', `Bearer ${staff}`)
      .send({ fills: [] })
      .expect(415);
    expect(json.body.message).toContain('text/csv');
    await post(csv(row()), staff, 'text/plain').expect(415);
    await post(csv(row()), staff, 'text/csv; charset=iso-8859-1').expect(415);
    await post(csv(row()), staff, 'text/csv; charset=utf-8').expect(200);
  });

  it('applies the records before a malformed one, reports it with its line, and reads no further', async () => {
    const before = await countFills();
    const body = csv(
      row({ externalId: 'M-1' }),
      row({ externalId: 'M-2' }),
      '',
      row({ externalId: 'M-3', drugName: '"Amlodipine 5 mg' }),
      row({ externalId: 'M-4' }),
    );
    const results: Result[] = (await post(body).expect(200)).body.results;
    expect(results).toEqual([
      expect.objectContaining({ externalId: 'M-1', outcome: 'created', line: 2 }),
      expect.objectContaining({ externalId: 'M-2', outcome: 'created', line: 3 }),
      { externalId: null, outcome: 'rejected', line: 5, errors: [expect.stringMatching(/unclosed quote/)] },
    ]);
    expect(await countFills()).toBe(before + 2);

    const stray = csv(
      row({ externalId: 'M-5' }),
      row({ externalId: 'M-6', drugName: '"Amlodipine" 5 mg' }),
      row({ externalId: 'M-7' }),
    );
    const strayResults: Result[] = (await post(stray).expect(200)).body.results;
    expect(strayResults.map((r) => [r.externalId, r.outcome, r.line])).toEqual([
      ['M-5', 'created', 2],
      [null, 'rejected', 3],
    ]);
    expect(strayResults[1].errors?.[0]).toContain('column "drugName"');
  });

  it('imports 10,000 records in one file', async () => {
    const before = await countFills();
    const lines = Array.from({ length: 10_000 }, (_, i) =>
      row({ externalId: `BULK-${i}`, fillNumber: String(i % 12) }),
    );
    const results: Result[] = (await post(csv(...lines)).expect(200)).body.results;
    expect(results).toHaveLength(10_000);
    expect(
      results.every((r, i) => r.outcome === 'created' && r.externalId === `BULK-${i}` && r.line === i + 2),
    ).toBe(true);
    expect(await countFills()).toBe(before + 10_000);
  });

  it('keeps the chunks applied before one that fails, and applies none after it', async () => {
    // A write that fails in Postgres, as a lost connection or a full disk would, for one record of the second chunk.
    await t.db.query(`
      CREATE FUNCTION test_refuse_fill() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.external_id = 'REFUSED' THEN RAISE EXCEPTION 'refused by the test'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER test_refuse_fill BEFORE INSERT ON fills FOR EACH ROW EXECUTE FUNCTION test_refuse_fill();`);
    try {
      const before = await countFills();
      const lines = Array.from({ length: 2 * IMPORT_CHUNK_ROWS + 500 }, (_, i) =>
        row({ externalId: i === IMPORT_CHUNK_ROWS + 10 ? 'REFUSED' : `CHUNKED-${i}` }),
      );
      const response = await post(csv(...lines));
      expect(response.status).toBe(500);
      expect(response.body.message).toBe('internal error');
      const applied = await t.db.query<{ external_id: string }[]>(
        `SELECT external_id FROM fills WHERE external_id LIKE 'CHUNKED-%'`,
      );
      expect(applied).toHaveLength(IMPORT_CHUNK_ROWS);
      expect(await countFills()).toBe(before + IMPORT_CHUNK_ROWS);
      const first = new Set(applied.map((r) => r.external_id));
      expect(first.has('CHUNKED-0') && first.has(`CHUNKED-${IMPORT_CHUNK_ROWS - 1}`)).toBe(true);
    } finally {
      await t.db.query(`DROP TRIGGER test_refuse_fill ON fills; DROP FUNCTION test_refuse_fill()`);
    }
  });

  it("refuses wrong roles and missing keys, and rejects another pharmacy's records by name", async () => {
    const auditor = await t.given.apiKey('auditor', pharmacy);
    await post(csv(row()), auditor).expect(403);
    await request(t.http)
      .post('/v1/fills/import')
      .set('Content-Type', 'text/csv')
      .send(csv(row()))
      .expect(401);

    const other = await t.given.pharmacy({ name: 'Elsewhere', smsFrom: '+14155550101' });
    const otherStaff = await t.given.apiKey('staff', other);
    const results: Result[] = (await post(csv(row({ externalId: 'X-1' })), otherStaff).expect(200)).body
      .results;
    expect(results).toEqual([
      { externalId: 'X-1', outcome: 'rejected', errors: ['pharmacyId not found'], line: 2 },
    ]);

    const integration = await t.given.apiKey('integration', pharmacy);
    await post(csv(row()), integration).expect(200);
  });

  it('answers 413 to a declared body over 32 MB without reading it', async () => {
    const before = await countFills();
    const response = await post(csv(row()) + '\n'.repeat(32 * 1024 * 1024)).expect(413);
    expect(response.body).toEqual({ statusCode: 413, message: 'request body is too large' });
    expect(await countFills()).toBe(before);
    await post(csv(row())).expect(200); // the connection is still usable
  });
});
