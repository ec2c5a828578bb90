// A fresh, migrated database per benchmark (as test/helpers/database.ts, without jest), dropped afterwards.
import { EXPERIMENTS, RUN_ID, SERVER, dist, log, pkg } from './env.mjs';

const { Client, Pool } = pkg('pg');
const open = new Set();

async function admin(sql) {
  const client = new Client({ connectionString: `${SERVER}/postgres` });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

/** Creates `rxn_bench_<run>_<label>` and applies every migration with the product's own `migrate`. */
export async function createBenchDatabase(label) {
  const name = `rxn_bench_${RUN_ID}_${label}`.replace(/[^a-z0-9_]/g, '_');
  const url = `${SERVER}/${name}`;
  const { migrate } = dist('libs/common/src/database/data-source');
  await migrate(url);
  await applyExperiments(name, url);
  const pool = new Pool({ connectionString: url, max: 4 });
  pool.on('error', () => undefined);
  const database = {
    name,
    url,
    pool,
    query: (sql, params) => pool.query(sql, params),
    async drop() {
      open.delete(database);
      await pool.end().catch(() => undefined);
      await admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch((error) => log(`could not drop ${name}: ${error.message}`));
    },
  };
  open.add(database);
  return database;
}

async function applyExperiments(name, url) {
  if (EXPERIMENTS.includes('sync_commit_off')) await admin(`ALTER DATABASE "${name}" SET synchronous_commit = off`);
  if (EXPERIMENTS.includes('unchained_audit')) {
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`CREATE SEQUENCE bench_audit_seq`);
      await client.query(`
        CREATE OR REPLACE FUNCTION audit_chain_append() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          NEW.seq := nextval('bench_audit_seq');
          NEW.at := coalesce(NEW.at, now());
          NEW.prev_hash := '';
          NEW.hash := '';
          RETURN NEW;
        END $$`);
    } finally {
      await client.end();
    }
  }
}

/**
 * Drops benchmark databases that a killed run left behind (names carry the run's start time in base 36); only
 * ones older than six hours, so a benchmark running beside this one keeps its own.
 */
export async function dropStaleDatabases() {
  const { rows } = await admin(`SELECT datname FROM pg_database WHERE datname LIKE 'rxn\\_bench\\_%'`);
  for (const { datname } of rows) {
    const started = parseInt(datname.split('_')[2].slice(0, -4), 36);
    if (Number.isFinite(started) && Date.now() - started > 6 * 3600_000) {
      log(`dropping stale ${datname}`);
      await admin(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`).catch((error) => log(`could not drop ${datname}: ${error.message}`));
    }
  }
}

/** Drops whatever a failed or interrupted run left. */
export async function dropOpenDatabases() {
  for (const database of [...open]) await database.drop();
}
