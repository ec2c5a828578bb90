import { client, startStack, type Stack } from '../helpers/stack';
import { waitFor } from '../helpers/wait';

/**
 * A TCPA line that must hold under load: once the STOP webhook has been answered 200, nothing more is sent to
 * that patient, however many notices were in flight.
 */
describe('STOP racing a stream of sends (processes, HTTP only)', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack();
  }, 60000);
  afterAll(async () => {
    await stack?.stop();
  });

  it('sends nothing after the STOP was acknowledged', async () => {
    const adminKey = stack
      .cli('api-key', 'create', '--role', 'admin', '--label', 'race')
      .stdout.trim()
      .split('\n')
      .pop() as string;
    const admin = client(stack.urls.consentApi, adminKey);
    const pharmacy = (
      await admin.post('/v1/pharmacies', {
        name: 'Race Pharmacy',
        timezone: 'America/New_York',
        smsFrom: '+14155550130',
        callbackPhone: '+14155550199',
        settings: {
          readyCoalesceSeconds: 0,
          sendRatePerSecond: 1000,
          quietHours: { start: '00:00', end: '23:59' },
        },
      })
    ).body as { id: string };
    const phone = '+14155557001';
    const patient = (
      await admin.post('/v1/patients', {
        pharmacyId: pharmacy.id,
        externalId: 'RACE-1',
        firstName: 'Rae',
        phone,
      })
    ).body as { id: string };
    await admin.put(`/v1/patients/${patient.id}/consent/sms`, { status: 'opted_in', source: 'test' });
    const scheduler = client(stack.urls.scheduler, adminKey);
    const sandbox = client(stack.urls.sandbox);

    const fills = (
      await scheduler.post('/v1/fills', {
        fills: Array.from({ length: 100 }, (_, i) => ({
          pharmacyId: pharmacy.id,
          externalId: `RACE-F${i}`,
          patientExternalId: 'RACE-1',
          rxNumber: `RX-R${i}`,
          fillNumber: 0,
          drugName: 'Amlodipine 5 mg',
          quantity: 30,
          daysSupply: 30,
          refillsRemaining: 1,
          filledAt: new Date(Date.now() - 3600_000).toISOString(),
          status: 'in_progress',
        })),
      })
    ).body as { results: Array<{ id: string }> };

    let acknowledgedAt = 0;
    const clicks = fills.results.map(async (fill, i) => {
      await new Promise((resolve) => setTimeout(resolve, i * 15));
      await scheduler.post(`/v1/fills/${fill.id}/ready`);
    });
    const stop = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 50 * 15));
      const reply = await sandbox.post('/sandbox/inbound', { from: phone, to: '+14155550130', body: 'STOP' });
      expect((reply.body as { status: number }).status).toBe(200);
      acknowledgedAt = Date.now();
    })();
    await Promise.all([...clicks, stop]);
    // Give anything that was going to (wrongly) go out the time to arrive.
    await new Promise((resolve) => setTimeout(resolve, 2000));

    const received = (await sandbox.get(`/sandbox/messages?to=${encodeURIComponent(phone)}`)).body as Array<{
      receivedAt: string;
      body: string;
    }>;
    const texts = received.filter((m) => !/unsubscribed/i.test(m.body));
    expect(texts.length).toBeGreaterThan(0);
    const late = texts.filter((m) => Date.parse(m.receivedAt) > acknowledgedAt);
    expect(late).toEqual([]);
    // An attempt whose answer was lost (a reset keep-alive socket) is settled only after a minute: allow for it.
    await waitFor(
      'every notice settled',
      async () => {
        const list = (
          await client(stack.urls.dispatcher, adminKey).get(`/v1/notifications?patientId=${patient.id}`)
        ).body as Array<{ state: string }>;
        return list.length === 100 && list.every((n) => !['pending', 'sending'].includes(n.state));
      },
      90000,
    );
  }, 150000);
});
