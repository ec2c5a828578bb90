import {
  enqueue,
  openScenario,
  providerChaos,
  seedPatients,
  seedPharmacy,
  settle,
  sleep,
  sql,
  texts,
  type Scenario,
} from './harness';

const N = 100;
const STOP_AT = 50;
const GAP_MS = 25;
const SEED = Number(process.env.CHAOS_SEED ?? 20241123);

interface MessageRow {
  id: string;
  notification_ids: string[];
  status: string;
  provider_sid: string | null;
}

/**
 * The TCPA line under harsher conditions than test/e2e/opt-out-race: three dispatchers take a stream of 100 ready
 * notices for one patient (one every 25 ms, each enqueued as it is created), and the patient texts STOP halfway.
 * Once the STOP webhook has been answered, nothing more may reach the patient; every notice still ends settled
 * (sent, or suppressed as opted out), none twice. Twice: with a healthy provider, and with one that fails 15% of
 * sends with a 500 (some after recording the message), so attempts are still open when the STOP arrives.
 */
describe('chaos: STOP in the middle of a stream, several dispatchers', () => {
  let s: Scenario | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });

  it('sends nothing after the STOP was acknowledged', async () => {
    s = await openScenario('stop-mid-stream', { dispatchers: 3 });
    await stopMidStream(s, null);
  });

  it('sends nothing after the STOP was acknowledged, with 15% provider 500s', async () => {
    s = await openScenario('stop-mid-stream-500s', { dispatchers: 3 });
    await stopMidStream(s, { rate: 0.15, kinds: ['http500', 'http500AfterRecord'], seed: SEED });
  });
});

async function stopMidStream(s: Scenario, chaos: Parameters<typeof providerChaos>[1] | null): Promise<void> {
  const phone = '+14155557001';
  const pharmacy = await seedPharmacy(s, '+14155550130');
  const [patient] = await seedPatients(s, pharmacy, 1, { phone: () => phone });
  if (chaos) await providerChaos(s, chaos);

  // What the STOP webhook answered (through the sandbox), when, and how long it took.
  const reply: { answer: number | string; at: number; ms: number } = { answer: 'none', at: 0, ms: 0 };
  let stop: Promise<void> = Promise.resolve();
  const ids: string[] = [];
  for (let i = 0; i < N; i++) {
    const [row] = await sql<{ id: string }>(
      s,
      `WITH f AS (
           INSERT INTO fills (pharmacy_id, patient_id, external_id, rx_number, fill_number, drug_name, quantity, days_supply,
                              refills_remaining, filled_at, status, ready_at)
           VALUES ($1, $2, $3, $3, 0, 'Amlodipine 5 mg', 30, 30, 1, now() - interval '1 hour', 'ready', now())
           RETURNING id, patient_id)
         INSERT INTO notifications (pharmacy_id, patient_id, kind, fill_ids, dedup_key, due_at)
         SELECT $1, f.patient_id, 'ready', ARRAY[f.id], 'ready:' || f.id, now() FROM f RETURNING id`,
      [pharmacy.id, patient.patientId, `STOP-F${i}`],
    );
    ids.push(row.id);
    await enqueue(s, [row.id]);
    if (i === STOP_AT) {
      stop = (async () => {
        const asked = Date.now();
        const response = await fetch(`${s.stack.urls.sandbox}/sandbox/inbound`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ from: phone, to: pharmacy.smsFrom, body: 'STOP' }),
        });
        const answer = (await response.json()) as { status?: number; error?: string; detail?: string };
        // The sandbox gives up on the webhook after 15 s, as Twilio does (502): then the STOP was never acknowledged to the carrier.
        reply.answer =
          answer.status ?? `${response.status} ${answer.error ?? ''} ${answer.detail ?? ''}`.trim();
        reply.at = Date.now();
        reply.ms = reply.at - asked;
      })();
    }
    await sleep(GAP_MS);
  }
  await stop;
  const settled = await settle(s, 60000);

  const received = await texts(s, phone);
  const late = received.filter((m) => Date.parse(m.receivedAt) > reply.at);
  const notifications = await sql<{ id: string; state: string; reason: string | null; created_at: Date }>(
    s,
    `SELECT id, state, reason, created_at FROM notifications`,
  );
  const messages = await sql<MessageRow>(
    s,
    `SELECT id, notification_ids, status, provider_sid FROM messages`,
  );
  const bySid = new Map(messages.filter((m) => m.provider_sid).map((m) => [m.provider_sid, m]));
  // Texts per notification, through the message rows that carried them (one text may cover several notices).
  const textsPer = new Map<string, number>();
  for (const text of received)
    for (const id of bySid.get(text.sid)?.notification_ids ?? [])
      textsPer.set(id, (textsPer.get(id) ?? 0) + 1);
  const unaccounted = received.filter((t) => !bySid.has(t.sid)).length;
  const sentStates = notifications.filter((n) => ['sent', 'delivered'].includes(n.state));
  const suppressed = notifications.filter((n) => n.state === 'suppressed');
  const lost = notifications.filter(
    (n) =>
      !['sent', 'delivered', 'suppressed'].includes(n.state) ||
      (['sent', 'delivered'].includes(n.state) && !textsPer.has(n.id)),
  );
  const duplicated = [...textsPer.values()].reduce((sum, n) => sum + Math.max(0, n - 1), 0);
  const createdAfterStop = notifications.filter((n) => n.created_at.getTime() > reply.at);

  const result = {
    scenario: s.name,
    notifications: ids.length,
    sent: received.length,
    lost: lost.length,
    duplicated,
    lateAfterStop: late.length,
    unaccountedTexts: unaccounted,
    notificationsSent: sentStates.length,
    notificationsSuppressed: suppressed.length,
    createdAfterStop: createdAfterStop.length,
    ...(chaos ? { providerChaos: chaos } : {}),
    stopAnswer: reply.answer,
    stopAnsweredMs: reply.ms,
    seconds: Math.round((Date.now() - s.startedAt) / 100) / 10,
    settled,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  if (reply.answer !== 200 || late.length > 0 || lost.length > 0 || duplicated > 0 || unaccounted > 0) {
    const stuck = await sql<Record<string, unknown>>(
      s,
      `SELECT n.id, n.state, n.lease_owner, n.lease_expires_at,
              (SELECT json_agg(json_build_object('id', m.id, 'status', m.status, 'sid', m.provider_sid, 'error', m.error_code, 'at', m.created_at))
                 FROM messages m WHERE m.notification_ids && ARRAY[n.id]) AS messages
       FROM notifications n WHERE n.id = ANY($1::uuid[])`,
      [lost.map((n) => n.id)],
    );
    const jobs = await Promise.all(
      lost.slice(0, 10).map(async (n) => {
        const job = await s.queue.getJob(n.id);
        return job
          ? {
              id: n.id,
              state: await job.getState(),
              attemptsMade: job.attemptsMade,
              failedReason: job.failedReason,
            }
          : null;
      }),
    );
    process.stdout.write(
      `${s.name} evidence: ${JSON.stringify({ acknowledgedAt: new Date(reply.at).toISOString(), late, stuck, jobs }, null, 1).slice(0, 12000)}\n`,
    );
  }

  expect(reply.answer).toBe(200);
  // The STOP landed mid-stream: texts went out before it, and notices after it were held back.
  expect(received.filter((m) => Date.parse(m.receivedAt) <= reply.at).length).toBeGreaterThan(0);
  expect(suppressed.length).toBeGreaterThan(0);
  expect(result).toMatchObject({ lateAfterStop: 0, lost: 0, duplicated: 0, unaccountedTexts: 0 });
  // Whatever was created after the STOP was answered is suppressed as opted out.
  expect(createdAfterStop.filter((n) => n.state !== 'suppressed' || n.reason !== 'opted_out')).toEqual([]);
}
