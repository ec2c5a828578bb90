import { Client } from 'pg';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { InitialSchema1732320000000 } from './migrations/1732320000000-initial-schema';
import { DetailedMessages1732400000000 } from './migrations/1732400000000-detailed-messages';
import { FillsRunOutIndex1732500000000 } from './migrations/1732500000000-fills-run-out-index';
import { AuditSealing1732600000000 } from './migrations/1732600000000-audit-sealing';
import { MessagesGinNoPendingList1732700000000 } from './migrations/1732700000000-messages-gin-no-pending-list';
import { ConsentEvidenceIntegrity1732800000000 } from './migrations/1732800000000-consent-evidence-integrity';
import { IdentifierCollation1732900000000 } from './migrations/1732900000000-identifier-collation';
import { AuditSealingCost1733000000000 } from './migrations/1733000000000-audit-sealing-cost';
import { AuditSealingPlans1733100000000 } from './migrations/1733100000000-audit-sealing-plans';
import { InboundAnswered1733200000000 } from './migrations/1733200000000-inbound-answered';
import { AttemptAnsweredBy1733300000000 } from './migrations/1733300000000-attempt-answered-by';

export const MIGRATIONS = [
  InitialSchema1732320000000,
  DetailedMessages1732400000000,
  FillsRunOutIndex1732500000000,
  AuditSealing1732600000000,
  MessagesGinNoPendingList1732700000000,
  ConsentEvidenceIntegrity1732800000000,
  IdentifierCollation1732900000000,
  AuditSealingCost1733000000000,
  AuditSealingPlans1733100000000,
  InboundAnswered1733200000000,
  AttemptAnsweredBy1733300000000,
];

export function dataSourceOptions(databaseUrl: string, poolSize = 20): DataSourceOptions {
  return {
    type: 'postgres',
    url: databaseUrl,
    synchronize: false,
    migrationsRun: false,
    migrations: MIGRATIONS,
    entities: [],
    extra: { max: poolSize, connectionTimeoutMillis: 5000 },
  };
}

/** Creates the database named in the URL when it does not exist yet (the server itself must be up). */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  url.pathname = '/postgres';
  const client = new Client({ connectionString: url.toString() });
  await client.connect();
  try {
    const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (exists.rowCount === 0) {
      await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
    }
  } finally {
    await client.end();
  }
}

/** Applies every pending migration; safe to run again and from several processes at once. */
export async function migrate(databaseUrl: string): Promise<string[]> {
  await ensureDatabase(databaseUrl);
  const dataSource = new DataSource({
    ...dataSourceOptions(databaseUrl, 2),
    migrationsTransactionMode: 'all',
  });
  await dataSource.initialize();
  try {
    // Serialise concurrent migrators (several containers starting together).
    await dataSource.query('SELECT pg_advisory_lock(7270061)');
    const applied = await dataSource.runMigrations();
    await dataSource.query('SELECT pg_advisory_unlock(7270061)');
    return applied.map((m) => m.name);
  } finally {
    await dataSource.destroy();
  }
}

// Convention: TypeORM answers a top-level UPDATE/DELETE with [rows, count] instead of rows, so every
// `UPDATE ... RETURNING` here is written `WITH x AS (UPDATE ... RETURNING ...) SELECT * FROM x`.
