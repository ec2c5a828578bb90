import { DataSource } from 'typeorm';
import { createTestDatabase, type TestDatabase } from '../../../../test/helpers/database';
import { given, type PatientFixture } from '../../../../test/helpers/given';
import { dataSourceOptions } from '../database/data-source';
import { KeyRing } from './key-ring';
import { rotateKeys } from './rotate';

describe('keys rotate (real Postgres)', () => {
  let database: TestDatabase;
  let db: DataSource;
  const index = Buffer.alloc(32, 4);
  // `kx1` is what the pattern `v1.k_1.%` would have taken for the current key `k_1`.
  const old = { id: 'kx1', key: Buffer.alloc(32, 5) };
  const next = { id: 'k_1', key: Buffer.alloc(32, 6) };
  const oldRing = new KeyRing([old], index);
  const ring = new KeyRing([next, old], index);

  beforeAll(async () => {
    database = await createTestDatabase();
    db = await new DataSource(dataSourceOptions(database.url, 2)).initialize();
  });
  afterAll(async () => {
    await db.destroy();
    await database.drop();
  });

  it('re-encrypts every value under the current key, in batches, even when key ids hold an underscore', async () => {
    const pharmacy = await given(db, oldRing).pharmacy();
    const patients: PatientFixture[] = [];
    for (let i = 0; i < 7; i++)
      patients.push(await given(db, oldRing).patient(pharmacy, { phone: `+1415555${6300 + i}` }));
    // One already under the current key: left as it is.
    const current = await given(db, ring).patient(pharmacy, { phone: '+14155556399' });
    const [{ phone_enc: untouched }] = await db.query<{ phone_enc: string }[]>(
      `SELECT phone_enc FROM patients WHERE id = $1`,
      [current.id],
    );

    const counts = await rotateKeys(db, ring, 2);
    expect(counts['patients.phone_enc']).toBe(7);
    expect(counts['patients.first_name_enc']).toBe(7);

    const rows = await db.query<{ id: string; phone_enc: string }[]>(`SELECT id, phone_enc FROM patients`);
    for (const row of rows) {
      expect(row.phone_enc).toMatch(/^v1\.k_1\./);
      const patient = [...patients, current].find((p) => p.id === row.id);
      expect(new KeyRing([next], index).decrypt(row.phone_enc)).toBe(patient?.phone);
    }
    expect(rows.find((r) => r.id === current.id)?.phone_enc).toBe(untouched);
    expect((await rotateKeys(db, ring, 2))['patients.phone_enc']).toBe(0);
  });
});
