import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { createApiKey, revokeApiKey, ROLES, type Role } from '../../libs/common/src/auth/api-keys';
import type { TestApp } from '../helpers/app';
import type { PatientFixture, PharmacyFixture } from '../helpers/given';
import { fingerprint, isKeyedRoute, registeredRoutes, startAllApps, type Apps } from './support';

type AppName = 'consentApi' | 'scheduler' | 'dispatcher';

interface Fixture {
  pharmacy: PharmacyFixture;
  patient: PatientFixture;
  fillId: string;
  notificationId: string;
  keys: Record<Role, string>;
}

interface Call {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH';
  path: string;
  body?: string | object;
  contentType?: string;
}

/**
 * How a key of pharmacy B must be answered when it reaches for pharmacy A's data: a route that names a record
 * answers 404 exactly as for a record that does not exist; a list answers without A's rows; a write that names
 * A's pharmacy in its body is refused without writing.
 */
type CrossPharmacy =
  | { kind: 'not-found' }
  | { kind: 'filtered'; check: (body: unknown, a: Fixture) => void }
  | { kind: 'refused'; status: number; check?: (body: unknown) => void };

interface RouteCase {
  app: AppName;
  /** As Express registers it: the sweep fails if an app serves a keyed route missing from this table. */
  route: string;
  roles: Role[];
  /** A request that would succeed for pharmacy A's own key of an allowed role. */
  call: (a: Fixture) => Call;
  /** The same request by a key of pharmacy B (by default `call(a)`). */
  crossCall?: (a: Fixture) => Call;
  cross: CrossPharmacy;
}

const noRowsOf = (body: unknown, a: Fixture) => {
  expect(Array.isArray(body)).toBe(true);
  const text = JSON.stringify(body);
  for (const id of [a.pharmacy.id, a.patient.id, a.notificationId]) expect(text).not.toContain(id);
};
const fillJson = (a: Fixture, externalId: string) => ({
  pharmacyId: a.pharmacy.id,
  externalId,
  patientExternalId: a.patient.externalId,
  rxNumber: `RX-${externalId}`,
  fillNumber: 0,
  drugName: 'Lisinopril 10 mg',
  quantity: 30,
  daysSupply: 30,
  refillsRemaining: 2,
  filledAt: new Date(Date.now() - 3600_000).toISOString(),
  status: 'in_progress',
});
const fillsRejected = (body: unknown) =>
  expect(body).toEqual({
    results: [
      expect.objectContaining({
        outcome: 'rejected',
        errors: expect.arrayContaining([expect.stringMatching(/pharmacyId/)]),
      }),
    ],
  });

const ROUTES: RouteCase[] = [
  // consent-api
  {
    app: 'consentApi',
    route: 'POST /v1/pharmacies',
    roles: ['admin'],
    call: () => ({
      method: 'POST',
      path: '/v1/pharmacies',
      body: {
        name: 'New Pharmacy',
        timezone: 'America/Chicago',
        smsFrom: '+14155556170',
        callbackPhone: '+14155556171',
      },
    }),
    // A key scoped to one pharmacy cannot create another.
    cross: { kind: 'refused', status: 403 },
  },
  {
    app: 'consentApi',
    route: 'PATCH /v1/pharmacies/:id',
    roles: ['admin'],
    call: (a) => ({
      method: 'PATCH',
      path: `/v1/pharmacies/${a.pharmacy.id}`,
      body: { name: 'Renamed Pharmacy' },
    }),
    cross: { kind: 'not-found' },
  },
  {
    app: 'consentApi',
    route: 'GET /v1/pharmacies/:id',
    roles: ['staff', 'integration', 'auditor'],
    call: (a) => ({ method: 'GET', path: `/v1/pharmacies/${a.pharmacy.id}` }),
    cross: { kind: 'not-found' },
  },
  {
    app: 'consentApi',
    route: 'POST /v1/patients',
    roles: ['staff', 'integration'],
    call: (a) => ({
      method: 'POST',
      path: '/v1/patients',
      body: {
        pharmacyId: a.pharmacy.id,
        externalId: a.patient.externalId,
        firstName: 'Renamed',
        phone: a.patient.phone,
      },
    }),
    cross: { kind: 'refused', status: 404 },
  },
  {
    app: 'consentApi',
    route: 'GET /v1/patients/:id',
    roles: ['staff', 'auditor'],
    call: (a) => ({ method: 'GET', path: `/v1/patients/${a.patient.id}` }),
    cross: { kind: 'not-found' },
  },
  {
    app: 'consentApi',
    route: 'PUT /v1/patients/:id/consent/:channel',
    roles: ['staff', 'integration'],
    call: (a) => ({
      method: 'PUT',
      path: `/v1/patients/${a.patient.id}/consent/sms`,
      body: { status: 'opted_out', source: 'counter' },
    }),
    cross: { kind: 'not-found' },
  },
  {
    app: 'consentApi',
    route: 'GET /v1/patients/:id/consent',
    roles: ['staff', 'integration', 'auditor'],
    call: (a) => ({ method: 'GET', path: `/v1/patients/${a.patient.id}/consent` }),
    cross: { kind: 'not-found' },
  },
  {
    app: 'consentApi',
    route: 'GET /v1/audit/access',
    roles: ['auditor'],
    call: (a) => ({ method: 'GET', path: `/v1/audit/access?patientId=${a.patient.id}` }),
    cross: { kind: 'filtered', check: (body) => expect(body).toEqual([]) },
  },
  {
    app: 'consentApi',
    route: 'GET /v1/audit/access (unfiltered)',
    roles: ['auditor'],
    call: () => ({ method: 'GET', path: '/v1/audit/access' }),
    cross: { kind: 'filtered', check: noRowsOf },
  },
  // scheduler
  {
    app: 'scheduler',
    route: 'POST /v1/fills',
    roles: ['staff', 'integration'],
    call: (a) => ({ method: 'POST', path: '/v1/fills', body: { fills: [fillJson(a, 'AC-F-JSON')] } }),
    cross: { kind: 'refused', status: 200, check: fillsRejected },
  },
  {
    app: 'scheduler',
    route: 'POST /v1/fills/import',
    roles: ['staff', 'integration'],
    call: (a) => {
      const fill = fillJson(a, 'AC-F-CSV');
      const columns = Object.keys(fill) as Array<keyof typeof fill>;
      return {
        method: 'POST',
        path: '/v1/fills/import',
        contentType: 'text/csv',
        body: `${columns.join(',')}\n${columns.map((c) => fill[c]).join(',')}\n`,
      };
    },
    cross: { kind: 'refused', status: 200, check: fillsRejected },
  },
  {
    app: 'scheduler',
    route: 'POST /v1/fills/:id/ready',
    roles: ['staff'],
    call: (a) => ({ method: 'POST', path: `/v1/fills/${a.fillId}/ready` }),
    cross: { kind: 'not-found' },
  },
  {
    app: 'scheduler',
    route: 'POST /v1/fills/:id/pickup',
    roles: ['staff'],
    call: (a) => ({ method: 'POST', path: `/v1/fills/${a.fillId}/pickup` }),
    cross: { kind: 'not-found' },
  },
  {
    app: 'scheduler',
    route: 'POST /fhir/r4',
    roles: ['integration'],
    call: (a) => ({
      method: 'POST',
      path: `/fhir/r4?pharmacyId=${a.pharmacy.id}`,
      contentType: 'application/fhir+json',
      body: { resourceType: 'Bundle', type: 'collection', entry: [] },
    }),
    cross: { kind: 'refused', status: 404 },
  },
  {
    app: 'scheduler',
    route: 'POST /v1/scans',
    roles: ['admin'],
    call: () => ({ method: 'POST', path: '/v1/scans' }),
    cross: { kind: 'refused', status: 200 },
  },
  {
    app: 'scheduler',
    route: 'GET /v1/patients/:id/adherence',
    roles: ['staff', 'auditor'],
    call: (a) => ({ method: 'GET', path: `/v1/patients/${a.patient.id}/adherence` }),
    cross: { kind: 'not-found' },
  },
  // dispatcher
  {
    app: 'dispatcher',
    route: 'GET /v1/notifications/:id',
    roles: ['staff', 'auditor'],
    call: (a) => ({ method: 'GET', path: `/v1/notifications/${a.notificationId}` }),
    cross: { kind: 'not-found' },
  },
  {
    app: 'dispatcher',
    route: 'GET /v1/notifications',
    roles: ['staff', 'auditor'],
    call: (a) => ({ method: 'GET', path: `/v1/notifications?patientId=${a.patient.id}` }),
    cross: { kind: 'filtered', check: (body) => expect(body).toEqual([]) },
  },
  {
    app: 'dispatcher',
    route: 'GET /v1/notifications (unfiltered)',
    roles: ['staff', 'auditor'],
    call: () => ({ method: 'GET', path: '/v1/notifications' }),
    cross: { kind: 'filtered', check: noRowsOf },
  },
  {
    app: 'dispatcher',
    route: 'GET /v1/messages',
    roles: ['staff', 'auditor'],
    call: (a) => ({ method: 'GET', path: `/v1/messages?notificationId=${a.notificationId}` }),
    cross: { kind: 'filtered', check: (body) => expect(body).toEqual([]) },
  },
  {
    app: 'dispatcher',
    route: 'GET /v1/messages (unfiltered)',
    roles: ['staff', 'auditor'],
    call: () => ({ method: 'GET', path: '/v1/messages' }),
    cross: { kind: 'filtered', check: noRowsOf },
  },
  {
    app: 'dispatcher',
    route: 'GET /v1/follow-ups',
    roles: ['staff'],
    call: () => ({ method: 'GET', path: '/v1/follow-ups' }),
    cross: { kind: 'filtered', check: noRowsOf },
  },
];

/** Every keyed route, CONTRACT.md's list plus GET /v1/pharmacies/{id}: no key, a revoked key, another pharmacy's key, a role without access. */
describe('access control on every keyed route of the three apps (in-process)', () => {
  let apps: Apps;
  /** Per app (each has its own database): pharmacy A's data and keys, and pharmacy B's. */
  const a = {} as Record<AppName, Fixture>;
  const b = {} as Record<AppName, Fixture>;
  const revoked = {} as Record<AppName, string>;
  const APPS: AppName[] = ['consentApi', 'scheduler', 'dispatcher'];

  const http = (app: AppName) => apps[app].http;
  const send = (app: AppName, call: Call, authorization?: string) => {
    const agent = request(http(app));
    const path = call.path;
    let req =
      call.method === 'GET'
        ? agent.get(path)
        : call.method === 'POST'
          ? agent.post(path)
          : call.method === 'PUT'
            ? agent.put(path)
            : agent.patch(path);
    if (authorization !== undefined) req = req.set('Authorization', authorization);
    if (call.contentType) req = req.set('Content-Type', call.contentType);
    return call.body === undefined ? req : req.send(call.body);
  };
  const bearer = (key: string) => `Bearer ${key}`;
  const db = (app: AppName) => apps[app].db;

  async function pharmacyWithData(t: TestApp, smsFrom: string, phone: string): Promise<Fixture> {
    const given = t.given;
    const pharmacy = await given.pharmacy({ smsFrom });
    const patient = await given.patient(pharmacy, { phone, consent: ['sms'] });
    const fill = await given.fill(patient, { status: 'in_progress' });
    // A due refill, so that a scan has something to create for this pharmacy.
    await given.fill(patient, { drugName: 'Atorvastatin 20 mg', daysSupply: 30, pickedUpDaysAgo: 27 });
    const { notificationId } = await given.notice(patient);
    await t.db.query(`UPDATE notifications SET state = 'failed', reason = 'invalid_number' WHERE id = $1`, [
      notificationId,
    ]);
    await t.db.query(
      `INSERT INTO messages (notification_id, notification_ids, pharmacy_id, patient_id, channel, to_enc, from_number, body_enc, status, error_code)
       VALUES ($1, ARRAY[$1::uuid], $2, $3, 'sms', $4, $5, $6, 'failed', 21211)`,
      [notificationId, pharmacy.id, patient.id, t.keys.encrypt(phone), smsFrom, t.keys.encrypt('text')],
    );
    const keys = {} as Record<Role, string>;
    for (const role of ROLES)
      keys[role] = (
        await createApiKey(t.db, { role, pharmacyId: pharmacy.id, label: `${role} of ${smsFrom}` })
      ).key;
    // A trace in the access log, for the auditor's list.
    await t.db.query(
      `INSERT INTO access_log (role, pharmacy_id, patient_id, action, route) VALUES ('staff', $1, $2, 'patient.read', '/v1/patients/x')`,
      [pharmacy.id, patient.id],
    );
    return { pharmacy, patient, fillId: fill.id, notificationId, keys };
  }

  beforeAll(async () => {
    apps = await startAllApps();
    for (const app of APPS) {
      a[app] = await pharmacyWithData(apps[app], '+14155556150', '+14155556151');
      b[app] = await pharmacyWithData(apps[app], '+14155556160', '+14155556161');
      revoked[app] = (await createApiKey(db(app), { role: 'admin', pharmacyId: null, label: 'revoked' })).key;
      expect(await revokeApiKey(db(app), revoked[app])).toBe(true);
    }
  }, 60000);
  afterAll(() => apps?.close());

  it('covers every keyed route the apps serve', () => {
    const served = APPS.flatMap((app) =>
      registeredRoutes(apps[app].app as INestApplication)
        .filter(isKeyedRoute)
        .map((route) => `${app} ${route}`),
    );
    const swept = new Set(ROUTES.map((r) => `${r.app} ${r.route.replace(/ \(.*\)$/, '')}`));
    expect(served.filter((route) => !swept.has(route))).toEqual([]);
    expect([...swept].filter((route) => !served.includes(route))).toEqual([]);
  });

  // Before the sweep below: any scan there (the admin's own, allowed one) would create pharmacy A's due reminders.
  // A key scoped to pharmacy B must scan B only: neither create A's reminders nor count them.
  it("keeps a pharmacy-scoped admin's scan to its own pharmacy", async () => {
    const notices = () =>
      db('scheduler').query<{ pharmacy_id: string; n: number }[]>(
        `SELECT pharmacy_id, count(*)::int AS n FROM notifications WHERE kind <> 'ready' GROUP BY 1`,
      );
    const before = await notices();
    const response = await send(
      'scheduler',
      { method: 'POST', path: '/v1/scans' },
      bearer(b.scheduler.keys.admin),
    );
    expect(response.status).toBe(200);
    const after = await notices();
    const count = (rows: { pharmacy_id: string; n: number }[], id: string) =>
      rows.find((r) => r.pharmacy_id === id)?.n ?? 0;
    expect({ created: response.body.created, pharmacyA: count(after, a.scheduler.pharmacy.id) }).toEqual({
      created: { refill_due: 1, renewal_needed: 0, unclaimed_pickup: 0, adherence_gap: 0 },
      pharmacyA: count(before, a.scheduler.pharmacy.id),
    });
  });

  describe.each(ROUTES.map((r) => [r.route, r] as const))('%s', (_name, route) => {
    const A = () => a[route.app];
    const B = () => b[route.app];
    const database = () => db(route.app);
    it('answers 401 without a key, with a malformed or made-up one, and with a revoked one, and changes nothing', async () => {
      const before = await fingerprint(database());
      for (const authorization of [
        undefined,
        'Bearer',
        `Basic ${Buffer.from('admin:admin').toString('base64')}`,
        'Bearer rxn_made-up-key',
        bearer(revoked[route.app]),
      ]) {
        const response = await send(route.app, route.call(A()), authorization);
        expect({ authorization, status: response.status }).toEqual({ authorization, status: 401 });
        expect(response.body).toEqual({
          statusCode: 401,
          message: expect.any(String),
          error: 'Unauthorized',
        });
      }
      expect(await fingerprint(database())).toEqual(before);
    });

    const forbidden = ROLES.filter((role) => role !== 'admin' && !route.roles.includes(role));
    if (forbidden.length > 0) {
      it(`answers 403 to ${forbidden.join(', ')} of the same pharmacy, and changes nothing`, async () => {
        const before = await fingerprint(database());
        for (const role of forbidden) {
          const response = await send(route.app, route.call(A()), bearer(A().keys[role]));
          expect({ role, status: response.status }).toEqual({ role, status: 403 });
        }
        expect(await fingerprint(database())).toEqual(before);
      });
    }

    it("never gives another pharmacy's key pharmacy A's data", async () => {
      const role = route.roles[0];
      const call = (route.crossCall ?? route.call)(A());
      const before = await fingerprint(database());
      const response = await send(route.app, call, bearer(B().keys[role]));
      switch (route.cross.kind) {
        case 'not-found': {
          expect(response.status).toBe(404);
          // The same answer as for a record that does not exist: no oracle for what another pharmacy holds.
          const missing = await send(
            route.app,
            {
              ...call,
              path: call.path.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/, '00000000-0000-4000-8000-000000000000'),
            },
            bearer(B().keys[role]),
          );
          expect(missing.status).toBe(404);
          expect(response.body).toEqual(missing.body);
          expect(await fingerprint(database())).toEqual(before);
          break;
        }
        case 'refused':
          expect(response.status).toBe(route.cross.status);
          route.cross.check?.(response.body);
          if (response.status >= 400) expect(await fingerprint(database())).toEqual(before);
          break;
        case 'filtered':
          expect(response.status).toBe(200);
          route.cross.check(response.body, A());
          break;
      }
      expect(JSON.stringify(response.body)).not.toContain(A().patient.phone);
    });

    it('serves an allowed role of pharmacy A (so the refusals above are about the key, not the request)', async () => {
      const response = await send(route.app, route.call(A()), bearer(A().keys[route.roles[0]]));
      if (route.route === 'POST /v1/pharmacies') {
        // A scoped admin may not create pharmacies; an unscoped one may.
        expect(response.status).toBe(403);
        const unscoped = (
          await createApiKey(database(), { role: 'admin', pharmacyId: null, label: 'unscoped' })
        ).key;
        expect((await send(route.app, route.call(A()), bearer(unscoped))).status).toBe(201);
        return;
      }
      expect(response.status).toBeLessThan(300);
    });
  });
});
