// scan: one POST /v1/scans over a realistic fill history, versus a bare pass over the same rows plus a bare
// addBulk of as many jobs as the scan created.
import { benchKeyRing, dist, log, round, sleep, SMALL } from './lib/env.mjs';
import { createBenchDatabase } from './lib/db.mjs';
import { insertPatients, insertPharmacies } from './lib/fixtures.mjs';
import { bearer, request } from './lib/http.mjs';
import { sampleWaits } from './lib/pg-waits.mjs';
import { appEnv, cli, cpuMeter, sampleRss, startApp, stopApp } from './lib/procs.mjs';
import { addBulkInBatches, cleanPrefix, openQueue, sendJobs } from './lib/queue.mjs';

const PHARMACIES = SMALL ? 10 : 100;
const PATIENTS = SMALL ? 1_000 : 10_000;
const RX_PER_PATIENT = 10;
const FILLS_PER_RX = 10; // 100 fills a patient: 100,000 (small) or 1,000,000 fills
const ZONES = ['America/New_York', 'America/Chicago', 'America/Denver', 'America/Phoenix', 'America/Los_Angeles', 'Pacific/Honolulu'];

/**
 * Each patient has 10 prescriptions of 10 monthly fills (fill 0 the oldest). The 9 older fills of every Rx are
 * picked-up history (90% of all fills, superseded by the next fill). The latest fill of an Rx is, by Rx:
 *   50%  picked up 25–37 days ago: due for refill today (5% of fills); one in five has no refills left
 *   15%  ready, 0–11 days ago, not picked up (1.5%): unclaimed pickup reminders from day 2 to day 9
 *    5%  returned to stock after being ready (0.5%)
 *   10%  a maintenance drug picked up 38–66 days ago and not refilled (1%): adherence gaps
 *   20%  picked up 0–19 days ago: not due yet (2%)
 * Prescriptions 0–2 of every patient are maintenance therapies; 10% of patients have their own time zone;
 * every fifth pharmacy overrides refillLeadDays.
 */
export const GENERATE_FILLS = `
  INSERT INTO fills (pharmacy_id, patient_id, external_id, rx_number, fill_number, drug_name, quantity, days_supply,
                     refills_remaining, filled_at, status, ready_at, picked_up_at, maintenance)
  SELECT p.pharmacy_id, p.id, 'F-' || p.n || '-' || r || '-' || j, 'RX-' || p.n || '-' || r, j, 'Drug ' || r, 30, 30,
         CASE WHEN j = 9 AND c.cat < 2 THEN 0 ELSE 3 END,
         t.ready_at - interval '1 hour',
         CASE WHEN j < 9 OR c.cat NOT BETWEEN 10 AND 13 THEN 'picked_up' WHEN c.cat = 13 THEN 'returned_to_stock' ELSE 'ready' END,
         t.ready_at,
         CASE WHEN j < 9 OR c.cat NOT BETWEEN 10 AND 13 THEN t.picked_up_at END,
         r < 3 OR c.cat BETWEEN 14 AND 15
  FROM (SELECT id, pharmacy_id, substr(external_id, 4)::int AS n FROM patients) p
  CROSS JOIN generate_series(0, ${RX_PER_PATIENT - 1}) AS r
  CROSS JOIN LATERAL (SELECT (p.n * ${RX_PER_PATIENT} + r) % 20 AS cat, (p.n + r * 7) AS k) c
  CROSS JOIN LATERAL (
    SELECT CASE
             WHEN c.cat < 10 THEN 25 + c.k % 13
             WHEN c.cat < 14 THEN c.k % 12
             WHEN c.cat < 16 THEN 38 + c.k % 29
             ELSE c.k % 20
           END AS latest_days_ago) l
  CROSS JOIN generate_series(0, ${FILLS_PER_RX - 1}) AS j
  CROSS JOIN LATERAL (
    SELECT now() - make_interval(days => l.latest_days_ago + (9 - j) * 30) AS picked_up_at,
           now() - make_interval(days => l.latest_days_ago + (9 - j) * 30, hours => 2) AS ready_at) t`;

const FLOOR_SQL = `
  SELECT count(*), sum(f.days_supply) FROM fills f
  JOIN pharmacies ph ON ph.id = f.pharmacy_id JOIN patients p ON p.id = f.patient_id`;

export async function scan({ full }) {
  const { QueueName } = dist('libs/common/src/queue/queue.catalog');
  const { DEFAULT_PHARMACY_SETTINGS } = dist('libs/common/src/pharmacy/pharmacy-settings');
  const sql = dist('apps/scheduler/src/scans/scan.sql');
  const db = await createBenchDatabase('scan');
  const { env, urls } = await appEnv(db, null);
  let scheduler;
  try {
    const pharmacies = await insertPharmacies(db, PHARMACIES, { timezones: ZONES });
    await db.query(`UPDATE pharmacies SET settings = '{"refillLeadDays": 7}' WHERE id = ANY($1::uuid[])`, [pharmacies.filter((_, i) => i % 5 === 4)]);
    await insertPatients(db, benchKeyRing(), pharmacies, PATIENTS);
    await db.query(`UPDATE patients SET timezone = 'America/Anchorage' WHERE substr(external_id, 4)::int % 10 = 3`);
    // Booted before the fills exist: whatever its timer does at start finds nothing to do.
    scheduler = await startApp('scheduler', env, urls.scheduler);
    const adminKey = cli(env, 'api-key', 'create', '--role', 'admin', '--label', 'bench');

    log(`scan: generating ${PATIENTS * RX_PER_PATIENT * FILLS_PER_RX} fills`);
    const g0 = performance.now();
    await db.query(GENERATE_FILLS);
    await db.query('VACUUM ANALYZE');
    const { rows: [{ fills }] } = await db.query(`SELECT count(*)::int AS fills FROM fills`);
    log(`scan: ${fills} fills in ${((performance.now() - g0) / 1000).toFixed(1)} s`);

    // Floor, part 1: the same rows and joins, read once, warm (one untimed pass first).
    await db.query(FLOOR_SQL);
    const f0 = performance.now();
    await db.query(FLOOR_SQL);
    const floorSqlSeconds = (performance.now() - f0) / 1000;

    // Diagnostic: each statement of the scan as ScansService runs it, in a transaction rolled back afterwards.
    const statementSeconds = {};
    const client = await db.pool.connect();
    try {
      const now = new Date();
      const d = DEFAULT_PHARMACY_SETTINGS;
      const { rows: [window] } = await client.query(sql.REFILL_WINDOW, [now, d.adherenceGraceDays]);
      await client.query('BEGIN');
      for (const [name, text, params] of [
        ['refill', sql.REFILL_SCAN, [now, null, d.adherenceGraceDays, 1, 0, window.firstDay, window.days]],
        ['unclaimed', sql.UNCLAIMED_SCAN, [now, null, d.pickupReminderDays, d.returnToStockDay]],
        ['adherence', sql.ADHERENCE_SCAN, [now, null, d.adherenceGraceDays, 30]],
      ]) {
        const s0 = performance.now();
        const { rowCount } = await client.query(text, params);
        statementSeconds[name] = { seconds: round((performance.now() - s0) / 1000, 2), rows: rowCount };
      }
    } finally {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release();
    }
    await db.query('VACUUM ANALYZE notifications');

    // Floor, part 2: a bare addBulk of as many jobs as the scan creates (the statements above say how many),
    // same shape and batch size; once before the scan and once after, averaged (as dispatcher_throughput does
    // with its bare rate), so a slow minute on a shared machine weighs on both sides of the ratio alike.
    const floorAddBulk = async (count) => {
      const floorQueue = openQueue(env.QUEUE_PREFIX, `${QueueName.Delivery}-floor`);
      try {
        const seconds = await addBulkInBatches(floorQueue, sendJobs(Array.from({ length: count }, () => crypto.randomUUID())));
        return { jobs: count, seconds };
      } finally {
        await floorQueue.obliterate({ force: true }).catch(() => undefined);
        await floorQueue.close();
      }
    };
    const floorBefore = await floorAddBulk(Object.values(statementSeconds).reduce((sum, s) => sum + s.rows, 0));

    log('scan: POST /v1/scans');
    const rss = sampleRss([scheduler]);
    const cpu = await cpuMeter([scheduler], db);
    const waits = sampleWaits(db);
    const s0 = performance.now();
    const response = await request(`${urls.scheduler}/v1/scans`, { method: 'POST', headers: { ...bearer(adminKey), 'Content-Length': '0' } });
    const seconds = (performance.now() - s0) / 1000;
    const cpuSeconds = await cpu.stop();
    const postgresWaits = await waits.stop();
    await sleep(300);
    const peakRss = rss.stop();
    if (response.status !== 200) throw new Error(`POST /v1/scans answered ${response.status}: ${response.text.slice(0, 500)}`);
    const created = response.json.created;
    const createdTotal = Object.values(created).reduce((a, b) => a + b, 0);
    const { rows: [{ queued }] } = await db.query(`SELECT count(*)::int AS queued FROM notifications`);

    log('scan: second scan (nothing new)');
    const r0 = performance.now();
    const again = await request(`${urls.scheduler}/v1/scans`, { method: 'POST', headers: { ...bearer(adminKey), 'Content-Length': '0' } });
    const rescanSeconds = (performance.now() - r0) / 1000;

    const floorAfter = await floorAddBulk(createdTotal);
    const perJob = (floorBefore.seconds / Math.max(1, floorBefore.jobs) + floorAfter.seconds / Math.max(1, floorAfter.jobs)) / 2;
    const floorAddBulkSeconds = perJob * createdTotal;

    const floorSeconds = floorSqlSeconds + floorAddBulkSeconds;
    const ratio = seconds / floorSeconds;
    return {
      fills,
      patients: PATIENTS,
      pharmacies: PHARMACIES,
      seconds: round(seconds, 2),
      floorSeconds: round(floorSeconds, 2),
      floor: {
        sqlPassSeconds: round(floorSqlSeconds, 2),
        addBulkSeconds: round(floorAddBulkSeconds, 2),
        addBulkRuns: [floorBefore, floorAfter].map((run) => ({ jobs: run.jobs, seconds: round(run.seconds, 2) })),
      },
      ratio: round(ratio, 2),
      target: 'ratio <= 2',
      ...(full ? { pass: ratio <= 2 } : {}),
      schedulerPeakRssMb: peakRss.scheduler,
      rssTargetMb: 300,
      ...(full ? { rssPass: peakRss.scheduler < 300 } : {}),
      schedulerRssTimelineMb: rss.timeline('scheduler', seconds / 15),
      created,
      createdTotal,
      notificationRows: queued,
      rescanSeconds: round(rescanSeconds, 2),
      rescanCreated: again.json?.created ?? again.status,
      statementSecondsRolledBack: statementSeconds,
      cpuSeconds,
      postgresWaits,
    };
  } finally {
    if (scheduler) await stopApp(scheduler);
    await cleanPrefix(env.QUEUE_PREFIX);
    await db.drop();
  }
}
