// ready_latency: staff "ready" clicks fired open-loop at a fixed rate on distinct fills of distinct patients;
// latency = the sandbox's receive time of the patient's text − the moment the request was sent (one clock).
import { EXPERIMENTS, benchKeyRing, dist, log, openTimeZone, percentile, round, sleep, SMALL } from './lib/env.mjs';
import { createBenchDatabase } from './lib/db.mjs';
import { analyzeLoaded, insertOneFillPerPatient, insertPatients, insertPharmacies } from './lib/fixtures.mjs';
import { bearer, request } from './lib/http.mjs';
import { sampleWaits } from './lib/pg-waits.mjs';
import { appEnv, cli, cpuMeter, rssMb, sampleRss, startApp, stopApp } from './lib/procs.mjs';
import { cleanPrefix } from './lib/queue.mjs';

const RATE = 100;
const SECONDS = SMALL ? 20 : 60;
const WARMUP = SMALL ? 100 : 200; // requests at the same rate before measuring, excluded from the figures
const DRAIN_MS = SMALL ? 10_000 : 30_000; // after the last request, how long to wait for the texts still owed
const CALLBACK_DELAY_MS = EXPERIMENTS.includes('no_callbacks') ? 3_600_000 : 5;

/**
 * Fires one POST per fill at `rate`/s on a timer, without waiting for earlier answers. Resolves once the last
 * request is sent, with the records and a promise of every answer.
 */
async function fireOpenLoop(url, key, fills, rate) {
  const interval = 1000 / rate;
  const records = [];
  const inFlight = [];
  const t0 = performance.now() + 20;
  let next = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (next < fills.length && t0 + next * interval <= now) {
        const planned = t0 + next * interval;
        const record = { ...fills[next], planned, lagMs: null, sentAt: null, status: null, responseMs: null };
        records.push(record);
        next += 1;
        inFlight.push(
          request(`${url}/v1/fills/${record.fillId}/ready`, {
            method: 'POST',
            headers: { ...bearer(key), 'Content-Length': '0' },
            onSent: (t) => {
              record.sentAt = Date.now();
              record.lagMs = t - planned;
              record.sentMono = t;
            },
          }).then(
            (response) => {
              record.status = response.status;
              record.responseMs = response.endAt - record.sentMono;
            },
            (error) => (record.error = error.message),
          ),
        );
      }
      if (next >= fills.length) return resolve();
      setTimeout(tick, Math.max(0, t0 + next * interval - performance.now()));
    };
    tick();
  });
  return { records, answered: Promise.all(inFlight) };
}

/** Percentiles in ms; an Infinity (a text that never came) sorts last and shows as null. */
const summary = (values) => {
  const sorted = values.filter((v) => v !== null && !Number.isNaN(v)).sort((a, b) => a - b);
  return { p50: round(percentile(sorted, 50), 1), p95: round(percentile(sorted, 95), 1), p99: round(percentile(sorted, 99), 1), max: round(sorted[sorted.length - 1] ?? null, 1) };
};

export async function readyLatency({ full }) {
  const { startSandbox } = dist('tools/twilio-sandbox/src/sandbox');
  const { SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN } = dist('libs/common/src/config/config');
  const measured = RATE * SECONDS;
  const db = await createBenchDatabase('latency');
  const sandbox = await startSandbox({ port: 0, accountSid: SANDBOX_ACCOUNT_SID, authToken: SANDBOX_AUTH_TOKEN, callbackDelayMs: CALLBACK_DELAY_MS });
  const { env, urls } = await appEnv(db, sandbox);
  const apps = [];
  try {
    // One pharmacy sending everything at once: no coalescing hold, no quiet hours, a send rate above the offered load.
    const settings = { readyCoalesceSeconds: 0, sendRatePerSecond: 1000, quietHours: { start: '00:00', end: '23:59' } };
    const [pharmacy] = await insertPharmacies(db, 1, { settings, timezones: [openTimeZone()] });
    const patients = await insertPatients(db, benchKeyRing(), [pharmacy], WARMUP + measured);
    const fillIds = await insertOneFillPerPatient(db, patients, 'in_progress');
    await analyzeLoaded(db);
    const fills = patients.map((p, i) => ({ fillId: fillIds[i], patientId: p.id, phone: p.phone }));

    apps.push(await startApp('scheduler', env, urls.scheduler));
    apps.push(await startApp('dispatcher', env, urls.dispatcher));
    const staffKey = cli(env, 'api-key', 'create', '--role', 'staff', '--pharmacy', pharmacy, '--label', 'bench');
    const rssAfterBoot = Object.fromEntries(apps.map((app) => [app.name, Number((rssMb(app.pid) ?? 0).toFixed(1))]));
    log(`latency: scheduler pid ${apps[0].pid}, dispatcher pid ${apps[1].pid}; warm-up ${WARMUP} requests`);

    const rss = sampleRss(apps);
    await (await fireOpenLoop(urls.scheduler, staffKey, fills.slice(0, WARMUP), RATE)).answered;
    await sleep(1000);
    log(`latency: ${measured} requests at ${RATE}/s for ${SECONDS} s`);
    const cpu = await cpuMeter(apps, db);
    const waits = sampleWaits(db);
    const { records, answered } = await fireOpenLoop(urls.scheduler, staffKey, fills.slice(WARMUP), RATE);
    const total = WARMUP + measured;
    const drainDeadline = Date.now() + DRAIN_MS;
    let allAnswered = false;
    void answered.then(() => (allAnswered = true));
    while ((!allAnswered || sandbox.messages().length < total) && Date.now() < drainDeadline) await sleep(100);
    const cpuSeconds = await cpu.stop();
    const postgresWaits = await waits.stop();
    const peakRss = rss.stop();

    const receivedAt = new Map();
    for (const message of sandbox.messages()) {
      const at = Date.parse(message.receivedAt);
      if (!receivedAt.has(message.to) || at < receivedAt.get(message.to)) receivedAt.set(message.to, at);
    }
    const { rows } = await db.query(
      `SELECT n.patient_id, extract(epoch FROM n.created_at) * 1000 AS noticed, extract(epoch FROM m.created_at) * 1000 AS intent
       FROM notifications n LEFT JOIN messages m ON m.notification_id = n.id WHERE n.kind = 'ready'`,
    );
    const stamps = new Map(rows.map((r) => [r.patient_id, { noticed: Number(r.noticed), intent: r.intent === null ? null : Number(r.intent) }]));
    const latencies = [];
    const toNotice = [];
    const toIntent = [];
    const toProvider = [];
    let missing = 0;
    for (const r of records) {
      const at = receivedAt.get(r.phone);
      if (at === undefined) {
        // Never received within the drain window: counted as infinitely late, not left out.
        missing += 1;
        latencies.push(Infinity);
        continue;
      }
      latencies.push(at - r.sentAt);
      const s = stamps.get(r.patientId);
      if (s) {
        toNotice.push(s.noticed - r.sentAt);
        if (s.intent !== null) {
          toIntent.push(s.intent - s.noticed);
          toProvider.push(at - s.intent);
        }
      }
    }
    const latency = summary(latencies);
    const statuses = {};
    for (const r of records) {
      const key = r.status ?? r.error ?? 'no answer within the drain window';
      statuses[key] = (statuses[key] ?? 0) + 1;
    }
    const rssPass = Object.values(peakRss).every((mb) => mb < 200);
    return {
      requests: measured,
      ratePerSecond: RATE,
      seconds: SECONDS,
      latencyMs: latency,
      target: 'p99 < 50',
      ...(full ? { pass: missing === 0 && latency.p99 !== null && latency.p99 < 50 } : {}),
      received: latencies.length - missing,
      missing,
      missingCountedAs: 'infinite latency (a percentile that falls on one is null)',
      responses: statuses,
      httpResponseMs: summary(records.map((r) => r.responseMs)),
      breakdownMs: {
        requestToNotificationRow: summary(toNotice),
        notificationRowToSendIntent: summary(toIntent),
        sendIntentToProvider: summary(toProvider),
      },
      scheduleLagMs: summary(records.map((r) => r.lagMs)),
      peakRssMb: peakRss,
      rssAfterBootMb: rssAfterBoot,
      rssTargetMb: 200,
      ...(full ? { rssPass } : {}),
      cpuSeconds,
      postgresWaits,
      config: { warmupRequests: WARMUP, callbackDelayMs: CALLBACK_DELAY_MS, pharmacySettings: settings },
    };
  } finally {
    for (const app of apps.reverse()) await stopApp(app);
    await sandbox.close().catch(() => undefined);
    await cleanPrefix(env.QUEUE_PREFIX);
    await db.drop();
  }
}
