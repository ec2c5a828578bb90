import { client } from '../helpers/stack';
import {
  adminKey,
  openScenario,
  phoneFor,
  pooled,
  seedPatients,
  seedPharmacy,
  settle,
  sleep,
  sql,
  tally,
  type Recipient,
  type Scenario,
} from './harness';

const READY = 2500;
const REFILL = 2500;
const BATCH = 500;

type Fill = Record<string, string | number | boolean>;

/**
 * Two schedulers and three dispatchers on one database and one queue, 5,000 notifications created through the
 * schedulers' HTTP API, both ways at once:
 * - 2,500 ready notices: every fill is marked ready on BOTH schedulers at the same moment (two staff clicks racing
 *   on two replicas), so each click pair races the fill's row lock and the notification's dedup key;
 * - 2,500 refill reminders: POST /v1/scans fired on both schedulers together, three times while the clicks run,
 *   with the timer-driven scan (every 2 s, one job scheduler shared by both replicas) running as well.
 * Every fill must yield one notification and every notification one text.
 */
describe('chaos: 2 schedulers and 3 dispatchers together', () => {
  let s: Scenario;
  afterAll(async () => {
    await s?.close();
  });

  it('creates and sends each of 5,000 notifications exactly once', async () => {
    s = await openScenario('replicas', { dispatchers: 3, schedulers: 2 }, { SCAN_INTERVAL_SECONDS: '2' });
    const pharmacy = await seedPharmacy(s);
    const readyPatients = await seedPatients(s, pharmacy, READY, {
      externalPrefix: 'R-',
      phone: (i) => phoneFor(i, '415'),
    });
    const refillPatients = await seedPatients(s, pharmacy, REFILL, {
      externalPrefix: 'Q-',
      phone: (i) => phoneFor(i, '628'),
    });
    const key = adminKey(s);
    const schedulers = s.stack.urls.schedulers.map((url) => client(url, key));
    expect(schedulers).toHaveLength(2);

    const day = 86400_000;
    const now = Date.now();
    const readyFills: Fill[] = readyPatients.map((p, i) => ({
      pharmacyId: pharmacy.id,
      externalId: `RF-${i}`,
      patientExternalId: p.externalId,
      rxNumber: `RX-R${i}`,
      fillNumber: 0,
      drugName: 'Amlodipine 5 mg',
      quantity: 30,
      daysSupply: 30,
      refillsRemaining: 1,
      filledAt: new Date(now - 3600_000).toISOString(),
      status: 'in_progress',
    }));
    // Picked up 25 days ago with 30 days' supply: run-out in 5 days, inside the 5-day lead: a refill is due today.
    const refillFills: Fill[] = refillPatients.map((p, i) => ({
      pharmacyId: pharmacy.id,
      externalId: `QF-${i}`,
      patientExternalId: p.externalId,
      rxNumber: `RX-Q${i}`,
      fillNumber: 0,
      drugName: 'Lisinopril 10 mg',
      quantity: 30,
      daysSupply: 30,
      refillsRemaining: 2,
      filledAt: new Date(now - 26 * day).toISOString(),
      readyAt: new Date(now - 26 * day).toISOString(),
      pickedUpAt: new Date(now - 25 * day).toISOString(),
      status: 'picked_up',
    }));

    // A 503 (a dependency briefly unavailable, e.g. Postgres out of connections on a shared server) is retried, as
    // a pharmacy system would; any other answer than the expected one fails the scenario.
    let retried503 = 0;
    const post = async (scheduler: (typeof schedulers)[number], path: string, body?: unknown) => {
      for (let attempt = 1; ; attempt++) {
        const answer = await scheduler.post(path, body);
        if (answer.status !== 503 || attempt === 20) return answer;
        retried503 += 1;
        await sleep(100 * attempt);
      }
    };

    // Fills in through both schedulers, batch by batch.
    const batches: Fill[][] = [];
    for (const fills of [readyFills, refillFills])
      for (let i = 0; i < fills.length; i += BATCH) batches.push(fills.slice(i, i + BATCH));
    const fillIds = new Map<string, string>();
    await pooled(batches, 2, async (batch, i) => {
      const answer = await post(schedulers[i % 2], '/v1/fills', { fills: batch });
      expect(answer.status).toBe(200);
      for (const result of (
        answer.body as { results: Array<{ externalId: string; id?: string; outcome: string }> }
      ).results) {
        expect(result.outcome).toBe('created');
        fillIds.set(result.externalId, result.id ?? '');
      }
    });

    // Clicks racing on both replicas, and scans on both replicas at once, all at the same time.
    const mismatched: string[] = [];
    const clicks = pooled(readyFills, 8, async (fill) => {
      const id = fillIds.get(String(fill.externalId)) ?? '';
      const answers = await Promise.all(
        schedulers.map((scheduler) => post(scheduler, `/v1/fills/${id}/ready`)),
      );
      for (const answer of answers) expect(answer.status).toBe(202);
      const [a, b] = answers.map((answer) => (answer.body as { notificationId: string }).notificationId);
      if (a !== b) mismatched.push(id);
    });
    const scans = (async () => {
      const created: number[] = [];
      for (let round = 0; round < 3; round++) {
        const answers = await Promise.all(schedulers.map((scheduler) => post(scheduler, '/v1/scans')));
        for (const answer of answers) {
          expect(answer.status).toBe(200);
          created.push((answer.body as { created: { refill_due: number } }).created.refill_due);
        }
        await sleep(1500);
      }
      return created;
    })();
    const [, scanCreated] = await Promise.all([clicks, scans]);
    expect(mismatched).toEqual([]);

    const settled = await settle(s, 180000);
    const rows = await sql<{ id: string; patient_id: string; kind: string }>(
      s,
      `SELECT id, patient_id, kind FROM notifications`,
    );
    const byPatient = new Map(rows.map((r) => [r.patient_id, r.id]));
    const expected = [...readyPatients, ...refillPatients].map((p: Recipient) => ({
      notificationId: byPatient.get(p.patientId) ?? `none:${p.patientId}`,
      phone: p.phone,
    }));
    const kinds = rows.reduce<Record<string, number>>(
      (acc, r) => ({ ...acc, [r.kind]: (acc[r.kind] ?? 0) + 1 }),
      {},
    );
    const result = await tally(s, expected, {
      kinds,
      refillDueCreatedPerScanCall: scanCreated,
      retried503,
      settled,
    });
    expect(kinds).toEqual({ ready: READY, refill_due: REFILL });
    expect(result).toMatchObject({
      lost: 0,
      duplicated: 0,
      notSent: 0,
      notificationRows: READY + REFILL,
      unaccountedTexts: 0,
    });
  });
});
