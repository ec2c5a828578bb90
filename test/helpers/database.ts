import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

const SERVER = process.env.TEST_DATABASE_SERVER ?? 'postgres://postgres@127.0.0.1:5432';
export const ADMIN_URL = `${SERVER}/postgres`;
/** Every test database is named rxn_t_<run>_…, so concurrent runs never touch each other's. */
export const DB_PREFIX = 'rxn_t_';

/** Set by global setup for this run, inherited by the workers. */
export function runId(): string {
  const id = process.env.RXN_TEST_RUN;
  if (!id) throw new Error('RXN_TEST_RUN is not set: tests must run through jest (global setup)');
  return id;
}

export function templateName(run = runId()): string {
  return `${DB_PREFIX}${run}_template`;
}

export function databaseUrl(name: string): string {
  return `${SERVER}/${name}`;
}

export async function withAdmin<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const admin = new Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.end();
  }
}

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A fresh, migrated database for one test file, cloned from this run's template. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `${DB_PREFIX}${runId()}_${randomBytes(5).toString('hex')}`;
  await withAdmin((admin) => admin.query(`CREATE DATABASE "${name}" TEMPLATE "${templateName()}"`));
  return {
    url: databaseUrl(name),
    name,
    drop: () =>
      withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(
        () => undefined,
      ),
  };
}
