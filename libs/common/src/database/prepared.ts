import type { Pool } from 'pg';
import { QueryFailedError, TypeORMError, type DataSource } from 'typeorm';

/**
 * Runs a named statement on the data source's pool. Postgres parses and plans a named statement once per
 * connection and reuses the plan, where `DataSource.query` plans its text on every call: for the dispatcher's
 * CTEs that planning cost as much as running them. For single autocommit statements on hot paths only; a
 * statement inside a transaction still goes through the transaction's `EntityManager`.
 *
 * Errors from Postgres come back as TypeORM's `QueryFailedError` (the Postgres error as `driverError`), as
 * from `DataSource.query`; connection errors are passed through unchanged.
 */
export async function preparedQuery<T>(
  db: DataSource,
  name: string,
  text: string,
  values: unknown[],
): Promise<T[]> {
  const pool = (db.driver as unknown as { master?: Pool }).master;
  // Not connected yet (Postgres away since boot): the same error, answered 503, as DataSource.query gives.
  if (!pool) throw new TypeORMError('Driver not Connected');
  try {
    const result = await pool.query({ name, text, values });
    return result.rows as T[];
  } catch (error) {
    if (
      error instanceof Error &&
      'severity' in error &&
      typeof (error as { code?: unknown }).code === 'string'
    )
      throw new QueryFailedError(text, values, error);
    throw error;
  }
}
