import { migrate } from '../libs/common/src/database/data-source';
import { DB_PREFIX, databaseUrl, templateName, withAdmin } from './helpers/database';

const STALE_AFTER_MS = 3 * 3600_000;

/**
 * Migrates one template database for this run; each test file then clones it (CREATE DATABASE … TEMPLATE),
 * which is fast. Databases of runs that died more than a few hours ago are swept; live runs are left alone.
 */
export default async function globalSetup(): Promise<void> {
  const run = Date.now().toString(36);
  process.env.RXN_TEST_RUN = run;
  await withAdmin(async (admin) => {
    // starts_with, not LIKE: `_` is a LIKE wildcard, and 'rxnotify' LIKE 'rxn_t_%' would drop the dev database.
    const { rows } = await admin.query<{ datname: string }>(
      `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`,
      [DB_PREFIX],
    );
    for (const { datname } of rows) {
      const started = parseInt(datname.slice(DB_PREFIX.length).split('_')[0], 36);
      if (!Number.isFinite(started) || Date.now() - started > STALE_AFTER_MS) {
        await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
      }
    }
  });
  await migrate(databaseUrl(templateName(run)));
}
