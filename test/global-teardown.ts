import { DB_PREFIX, runId, withAdmin } from './helpers/database';

/** Drops whatever this run left behind: its template and any database a failed test did not drop. */
export default async function globalTeardown(): Promise<void> {
  const prefix = `${DB_PREFIX}${runId()}_`;
  await withAdmin(async (admin) => {
    const { rows } = await admin.query<{ datname: string }>(
      `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`,
      [prefix],
    );
    for (const { datname } of rows) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  });
}
