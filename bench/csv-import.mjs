// csv_import: one text/csv upload streamed to POST /v1/fills/import (skipped when the build has no such route).
import { Readable } from 'node:stream';
import { benchKeyRing, log, round, sleep, SMALL } from './lib/env.mjs';
import { createBenchDatabase } from './lib/db.mjs';
import { insertPatients, insertPharmacies } from './lib/fixtures.mjs';
import { bearer, request } from './lib/http.mjs';
import { sampleWaits } from './lib/pg-waits.mjs';
import { appEnv, cli, cpuMeter, sampleRss, startApp, stopApp } from './lib/procs.mjs';
import { cleanPrefix } from './lib/queue.mjs';

const ROWS = SMALL ? 20_000 : 100_000;
const PATIENTS = SMALL ? 1_000 : 5_000;
const COLUMNS = ['pharmacyId', 'externalId', 'patientExternalId', 'rxNumber', 'fillNumber', 'drugName', 'ndc', 'quantity', 'daysSupply', 'refillsRemaining', 'filledAt', 'status', 'readyAt', 'pickedUpAt', 'maintenance', 'therapeuticClass'];
const DRUGS = ['Atorvastatin 20 mg', 'Lisinopril 10 mg', 'Metformin 500 mg', '"Amoxicillin/Clavulanate 875 mg, tablet"', 'Levothyroxine 50 mcg'];
const DAY = 86_400_000;

/**
 * A PhMS history export: 98% picked-up fills over the past years, 1% in progress, 1% ready in the last hour
 * (each of those makes a ready notice, as a push would). Built in memory first so that generating it does not
 * compete with the import for the CPU; then streamed in 64 KB chunks.
 */
function buildCsv(pharmacyId, now) {
  const chunks = [];
  let buffer = `${COLUMNS.join(',')}\n`;
  for (let i = 0; i < ROWS; i += 1) {
    const patient = i % PATIENTS;
    const rx = Math.floor(i / PATIENTS) % 5;
    const fillNumber = Math.floor(i / (PATIENTS * 5));
    const kind = i % 100;
    const filled = new Date(now - (2 + (ROWS / (PATIENTS * 5) - fillNumber) * 30 + (patient % 20)) * DAY);
    const row = [pharmacyId, `IMP-${i}`, `PT-${patient}`, `RX-${patient}-${rx}`, fillNumber, DRUGS[rx], rx === 1 ? '00093-7146-56' : '', 30, 30, Math.max(0, 11 - fillNumber), filled.toISOString()];
    if (kind === 0) row.push('ready', new Date(now - 3_600_000).toISOString(), '');
    else if (kind === 1) row.push('in_progress', '', '');
    else row.push('picked_up', new Date(filled.getTime() + 3_600_000).toISOString(), new Date(filled.getTime() + DAY).toISOString());
    row.push(rx < 3 ? 'true' : 'false', rx === 0 ? 'statin' : '');
    buffer += `${row.join(',')}\n`;
    if (buffer.length > 65_536) {
      chunks.push(Buffer.from(buffer));
      buffer = '';
    }
  }
  chunks.push(Buffer.from(buffer));
  return chunks;
}

export async function csvImport({ full }) {
  const db = await createBenchDatabase('csv');
  const { env, urls } = await appEnv(db, null);
  let scheduler;
  try {
    const [pharmacy] = await insertPharmacies(db, 1);
    await insertPatients(db, benchKeyRing(), [pharmacy], PATIENTS);
    scheduler = await startApp('scheduler', env, urls.scheduler);
    const docs = await request(`${urls.scheduler}/docs-json`);
    const present = docs.status === 200 ? Boolean(docs.json?.paths?.['/v1/fills/import']?.post) : (await request(`${urls.scheduler}/v1/fills/import`, { method: 'POST' })).status !== 404;
    if (!present) return { skipped: 'route not present' };
    const key = cli(env, 'api-key', 'create', '--role', 'integration', '--pharmacy', pharmacy, '--label', 'bench');

    const chunks = buildCsv(pharmacy, Date.now());
    const bytes = chunks.reduce((sum, c) => sum + c.length, 0);
    log(`csv: importing ${ROWS} rows (${(bytes / 1e6).toFixed(1)} MB)`);
    const rss = sampleRss([scheduler]);
    const cpu = await cpuMeter([scheduler], db);
    const waits = sampleWaits(db);
    const t0 = performance.now();
    const response = await request(`${urls.scheduler}/v1/fills/import`, {
      method: 'POST',
      headers: { ...bearer(key), 'Content-Type': 'text/csv' },
      body: Readable.from(chunks),
    });
    const seconds = (performance.now() - t0) / 1000;
    const cpuSeconds = await cpu.stop();
    const postgresWaits = await waits.stop();
    await sleep(300);
    const peakRss = rss.stop();
    if (response.status !== 200) throw new Error(`POST /v1/fills/import answered ${response.status}: ${response.text.slice(0, 500)}`);
    const outcomes = {};
    for (const r of response.json.results) outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
    const firstRejected = response.json.results.find((r) => r.outcome === 'rejected');
    const { rows: [{ stored, notices }] } = await db.query(`SELECT (SELECT count(*)::int FROM fills) AS stored, (SELECT count(*)::int FROM notifications) AS notices`);
    const perSecond = ROWS / seconds;
    return {
      rows: ROWS,
      megabytes: round(bytes / 1e6, 1),
      seconds: round(seconds, 2),
      rowsPerSecond: round(perSecond, 0),
      target: 20_000,
      ...(full ? { pass: perSecond >= 20_000 && outcomes.created === ROWS } : {}),
      outcomes,
      ...(firstRejected ? { firstRejected } : {}),
      fillsStored: stored,
      readyNotices: notices,
      schedulerPeakRssMb: peakRss.scheduler,
      cpuSeconds,
      postgresWaits,
    };
  } finally {
    if (scheduler) await stopApp(scheduler);
    await cleanPrefix(env.QUEUE_PREFIX);
    await db.drop();
  }
}
