import { spawnSync } from 'node:child_process';
import Redis from 'ioredis';
import { client, startStack, type Stack } from '../helpers/stack';
import { waitFor } from '../helpers/wait';

const FIRST_NAME = 'Zebulon';
const LAST_NAME = 'Quixtanford';
const PHONE_E164 = '+14155557391';
/** Every way the phone could have been written down. */
const PHONE_FORMS = [
  PHONE_E164,
  '14155557391',
  '4155557391',
  '(415) 555-7391',
  '(415)555-7391',
  '415-555-7391',
  '415.555.7391',
  '415 555 7391',
  '(415)5557391',
  '555-7391',
  '555 7391',
  '555.7391',
  '5557391',
];

/**
 * What a stolen database dump, Redis snapshot or log archive would yield, after the whole flow ran as separate
 * processes (opt-in with evidence, ready, a provider failure and its retry, a text delivered, STOP, a suppressed
 * notice), logging at trace: no phone number in any format, no name, no message text. Only ciphertext and ids.
 */
describe('no PHI at rest: a pg_dump, every Redis key and every log line after a full flow', () => {
  let stack: Stack;
  let sentBody: string;
  let pharmacyId: string;
  let patientId: string;
  let notificationIds: string[];

  beforeAll(async () => {
    // The most verbose level: whatever any level would print is in the captured output.
    stack = await startStack({ LOG_LEVEL: 'trace' });
    const adminKey = stack
      .cli('api-key', 'create', '--role', 'admin', '--label', 'phi test')
      .stdout.trim()
      .split('\n')
      .pop() as string;
    const admin = client(stack.urls.consentApi, adminKey);
    const sandbox = client(stack.urls.sandbox);
    const pharmacy = await admin.post('/v1/pharmacies', {
      name: 'Main Street Pharmacy',
      timezone: 'America/Los_Angeles',
      smsFrom: '+14155550100',
      callbackPhone: '+14155550199',
      settings: { readyCoalesceSeconds: 0, quietHours: { start: '00:00', end: '23:59' } },
    });
    expect(pharmacy.status).toBe(201);
    pharmacyId = (pharmacy.body as { id: string }).id;
    const staffKey = stack
      .cli('api-key', 'create', '--role', 'staff', '--pharmacy', pharmacyId, '--label', 'counter')
      .stdout.trim()
      .split('\n')
      .pop() as string;
    const consentApi = client(stack.urls.consentApi, staffKey);
    const scheduler = client(stack.urls.scheduler, staffKey);
    const dispatcher = client(stack.urls.dispatcher, staffKey);

    const patient = await consentApi.post('/v1/patients', {
      pharmacyId,
      externalId: 'PT-PHI-1',
      firstName: FIRST_NAME,
      lastName: LAST_NAME,
      phone: '(415) 555-7391',
    });
    expect(patient.status).toBe(201);
    patientId = (patient.body as { id: string }).id;
    const optIn = await consentApi.put(`/v1/patients/${patientId}/consent/sms`, {
      status: 'opted_in',
      source: 'counter',
      evidence: `enrollment form signed by ${FIRST_NAME} ${LAST_NAME}, mobile (415) 555-7391`,
    });
    expect(optIn.status).toBe(200);

    let fills = 0;
    const ready = async () => {
      const externalId = `F-PHI-${++fills}`;
      const upsert = await scheduler.post('/v1/fills', {
        fills: [
          {
            pharmacyId,
            externalId,
            patientExternalId: 'PT-PHI-1',
            rxNumber: `RX-${externalId}`,
            fillNumber: 0,
            drugName: 'Metformin 500 mg',
            quantity: 60,
            daysSupply: 30,
            refillsRemaining: 5,
            filledAt: new Date(Date.now() - 3600_000).toISOString(),
            status: 'in_progress',
          },
        ],
      });
      const fillId = (upsert.body as { results: Array<{ id: string }> }).results[0].id;
      const marked = await scheduler.post(`/v1/fills/${fillId}/ready`);
      expect(marked.status).toBe(202);
      return (marked.body as { notificationId: string }).notificationId;
    };
    const state = async (id: string) =>
      ((await dispatcher.get(`/v1/notifications/${id}`)).body as { state: string }).state;

    // The first send fails once (the provider records it but answers 500): the job's attempt fails, and BullMQ
    // keeps its failure reason and stack trace in Redis.
    const fault = await sandbox.post('/sandbox/faults', {
      to: PHONE_E164,
      fault: { kind: 'http500AfterRecord', times: 1 },
    });
    expect(fault.status).toBeLessThan(300);
    const first = await ready();
    const [text] = await waitFor('the text', async () => {
      const received = (await sandbox.get(`/sandbox/messages?to=${encodeURIComponent(PHONE_E164)}`))
        .body as Array<{ body: string }>;
      return received.length > 0 ? received : null;
    });
    sentBody = text.body;
    // Settled by the provider lookup after the 500, the notification is sent (its delivery report may have come first).
    await waitFor('sent', async () => ['sent', 'delivered'].includes(await state(first)), 30000);

    const stop = await sandbox.post('/sandbox/inbound', {
      from: PHONE_E164,
      to: '+14155550100',
      body: 'STOP',
    });
    expect(stop.status).toBe(200);
    const consent = (await consentApi.get(`/v1/patients/${patientId}/consent`)).body as {
      sms: { status: string };
    };
    expect(consent.sms.status).toBe('opted_out');

    const second = await ready();
    await waitFor('suppressed', async () => (await state(second)) === 'suppressed');
    notificationIds = [first, second];
  }, 90000);
  afterAll(async () => {
    await stack?.stop();
  });

  const secrets = () => [...PHONE_FORMS, FIRST_NAME, LAST_NAME, sentBody];
  /** The secrets found in `text`, names matched in any case. */
  const leaked = (text: string) =>
    secrets().filter((secret) =>
      /^[A-Za-z]+$/.test(secret) ? text.toLowerCase().includes(secret.toLowerCase()) : text.includes(secret),
    );

  it('sent a real text, so there is something to leak', () => {
    expect(sentBody).toContain('Main Street Pharmacy');
    expect(sentBody).toMatch(/STOP/);
  });

  it('leaves no phone, name or message text in a data-only pg_dump of the database', () => {
    const dump = spawnSync('pg_dump', ['--data-only', '--no-owner', '-d', stack.database.url], {
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
    });
    expect(dump.stderr).toBe('');
    expect(dump.status).toBe(0);
    // Not vacuous: the dump holds the flow's rows, and a phone stored in clear is seen (the pharmacy's own
    // name and number are not PHI).
    for (const present of [
      'Main Street Pharmacy',
      '+14155550100',
      pharmacyId,
      patientId,
      ...notificationIds,
      'opted_out',
      'sms_keyword',
    ]) {
      expect(dump.stdout).toContain(present);
    }
    expect(leaked(dump.stdout)).toEqual([]);
  });

  it("leaves no phone, name or message text in any Redis key or value under the stack's queue prefix", async () => {
    const redis = new Redis(stack.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
    });
    await redis.connect();
    let snapshot = '';
    let keys = 0;
    try {
      let cursor = '0';
      do {
        const [next, batch] = await redis.scan(cursor, 'MATCH', `${stack.env.QUEUE_PREFIX}:*`, 'COUNT', 1000);
        cursor = next;
        for (const key of batch) {
          keys += 1;
          snapshot += `\n${key} `;
          const type = await redis.type(key);
          switch (type) {
            case 'string':
              snapshot += (await redis.getBuffer(key))?.toString('utf8') ?? '';
              break;
            case 'hash':
              snapshot += JSON.stringify(await redis.hgetall(key));
              break;
            case 'list':
              snapshot += JSON.stringify(await redis.lrange(key, 0, -1));
              break;
            case 'zset':
              snapshot += JSON.stringify(await redis.zrange(key, 0, -1, 'WITHSCORES'));
              break;
            case 'set':
              snapshot += JSON.stringify(await redis.smembers(key));
              break;
            case 'stream':
              snapshot += JSON.stringify(await redis.xrange(key, '-', '+'));
              break;
            case 'none':
              break; // expired between SCAN and TYPE
            default:
              throw new Error(`unexpected Redis type ${type} for ${key}`);
          }
        }
      } while (cursor !== '0');
    } finally {
      redis.disconnect();
    }
    // Not vacuous: the delivery jobs are there, named by their notification ids, with the failed attempt's reason.
    expect(keys).toBeGreaterThan(0);
    for (const id of notificationIds) expect(snapshot).toContain(id);
    expect(snapshot).toContain('provider answered 500');
    expect(leaked(snapshot)).toEqual([]);
  });

  it('leaves no phone, name or message text in the output of any process', () => {
    const logs = stack.logs();
    expect(logs).toContain('[dispatcher]');
    expect(leaked(logs)).toEqual([]);
  });
});
