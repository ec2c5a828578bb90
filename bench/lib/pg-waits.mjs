// What the benchmark database's backends are doing, sampled from pg_stat_activity: on CPU, waiting on a lock
// (and for which statement), or on I/O such as the WAL flush of a commit.

/**
 * Samples every `everyMs` on its own connection. `stop()` returns the mean number of active backends per wait
 * (`CPU` when not waiting), the statements most often running (first words of the SQL), and for lock waits the
 * statements that waited.
 */
export function sampleWaits(db, everyMs = 100) {
  const waits = new Map();
  const lockedStatements = new Map();
  const activeStatements = new Map();
  let samples = 0;
  let stopped = false;
  let error = null;
  const loop = (async () => {
    const client = await db.pool.connect();
    client.on('error', () => undefined);
    try {
      while (!stopped) {
        const { rows } = await client.query(
          `SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS wait, wait_event_type, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query
           FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()`,
        );
        samples += 1;
        for (const row of rows) {
          waits.set(row.wait, (waits.get(row.wait) ?? 0) + 1);
          activeStatements.set(row.query, (activeStatements.get(row.query) ?? 0) + 1);
          if (row.wait_event_type === 'Lock' || row.wait_event_type === 'LWLock') {
            const key = `${row.wait} ${row.query}`;
            lockedStatements.set(key, (lockedStatements.get(key) ?? 0) + 1);
          }
        }
        await new Promise((resolve) => setTimeout(resolve, everyMs));
      }
    } finally {
      client.release();
    }
  })().catch((e) => {
    // A diagnostic only: a full server (too many clients) must not fail the benchmark.
    error = e instanceof Error ? e.message : String(e);
  });
  const mean = (map, top) =>
    Object.fromEntries(
      [...map]
        .sort((a, b) => b[1] - a[1])
        .slice(0, top)
        .map(([k, n]) => [k, Number((n / Math.max(1, samples)).toFixed(2))]),
    );
  return {
    async stop() {
      stopped = true;
      await loop;
      return {
        samples,
        meanActiveBackends: mean(waits, 12),
        busiestStatements: mean(activeStatements, 5),
        lockWaitsByStatement: mean(lockedStatements, 5),
        ...(error ? { error } : {}),
      };
    },
  };
}
