import { OPT_OUT_LINE } from '@rxnotify/common/messaging';
import request from 'supertest';
import { startTestApp, type TestApp } from '../../../../test/helpers/app';
import { ConsentApiModule } from '../consent-api.module';

describe('pharmacies (consent-api, real Postgres)', () => {
  let t: TestApp;
  let admin: string;
  let numbers = 3000;
  const nextNumber = () => `+1415555${numbers++}`;

  const create = (body: object, key = admin) =>
    request(t.http).post('/v1/pharmacies').set('Authorization', `Bearer ${key}`).send(body);
  const valid = (overrides: object = {}) => ({
    name: 'Corner Drug',
    timezone: 'America/Chicago',
    smsFrom: nextNumber(),
    callbackPhone: '(415) 555-0199',
    ...overrides,
  });

  beforeAll(async () => {
    t = await startTestApp((config) => ConsentApiModule.forRoot(config));
    admin = await t.given.apiKey('admin');
  });
  afterAll(() => t.close());

  it('creates a pharmacy with phones in E.164 and stores only the settings overrides given', async () => {
    const res = await create(
      valid({
        smsFrom: '415-555-2900',
        voiceFrom: '+1 415 555 2901',
        settings: { readyCoalesceSeconds: 0, quietHours: { start: '08:00', end: '19:30' } },
      }),
    ).expect(201);
    expect(res.body).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      name: 'Corner Drug',
      timezone: 'America/Chicago',
      smsFrom: '+14155552900',
      voiceFrom: '+14155552901',
      callbackPhone: '+14155550199',
      settings: { readyCoalesceSeconds: 0, quietHours: { start: '08:00', end: '19:30' } },
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
    });
    const [row] = await t.db.query(`SELECT settings FROM pharmacies WHERE id = $1`, [res.body.id]);
    expect(row.settings).toEqual({ readyCoalesceSeconds: 0, quietHours: { start: '08:00', end: '19:30' } });
  });

  it('stores the canonical name of a time zone', async () => {
    const res = await create(valid({ timezone: 'america/new_york' })).expect(201);
    expect(res.body.timezone).toBe('America/New_York');
    expect(res.body.voiceFrom).toBeNull();
    expect(res.body.settings).toEqual({});
  });

  it.each([
    [{ settings: { colour: 'blue' } }, 'settings.colour is not a known setting'],
    [
      { settings: { quietHours: { start: '9am', end: '20:00' } } },
      'settings.quietHours.start must be a time of day as HH:MM (24-hour)',
    ],
    [
      { settings: { readyCoalesceSeconds: 9000 } },
      'settings.readyCoalesceSeconds must be an integer from 0 to 3600',
    ],
    [
      { settings: { pickupReminderDays: [9, 5] } },
      'settings.pickupReminderDays must be in strictly ascending order',
    ],
    [
      { settings: { reminderCaps: { perDay: 1, perWeek: 3, perMonth: 9 } } },
      'settings.reminderCaps.perMonth is not a known setting',
    ],
    [{ settings: 'loud' }, 'settings must be an object'],
    [{ timezone: 'Mars/Olympus_Mons' }, 'timezone must be an IANA time zone, such as America/New_York'],
    [{ smsFrom: '555-12' }, 'smsFrom must be a valid phone number'],
    [{ callbackPhone: 12 }, 'callbackPhone must be a valid phone number'],
    [{ name: '   ' }, 'name must be text of 1 to 200 characters, not blank, without control characters'],
    [
      { name: 'Bad\u0000Name' },
      'name must be text of 1 to 200 characters, not blank, without control characters',
    ],
    [{ owner: 'me' }, 'property owner should not exist'],
  ])('answers 422 naming the field for %j', async (overrides, problem) => {
    const res = await create(valid(overrides)).expect(422);
    expect(res.body.message).toContain(problem);
  });

  it('names every missing field', async () => {
    const res = await create({}).expect(422);
    const message = (res.body.message as string[]).join('\n');
    for (const field of ['name', 'timezone', 'smsFrom', 'callbackPhone']) expect(message).toContain(field);
  });

  it('refuses a number that already belongs to another pharmacy', async () => {
    const first = await create(valid()).expect(201);
    const res = await create(valid({ voiceFrom: first.body.smsFrom })).expect(409);
    expect(res.body.message).toContain('voiceFrom');
  });

  it('patches any field, merges settings key by key, and null returns a setting to its default', async () => {
    const { body: created } = await create(
      valid({ settings: { readyCoalesceSeconds: 0, sendRatePerSecond: 5 } }),
    ).expect(201);
    const patch = (body: object) =>
      request(t.http)
        .patch(`/v1/pharmacies/${created.id}`)
        .set('Authorization', `Bearer ${admin}`)
        .send(body);

    const res = await patch({
      name: 'Corner Drug & Gifts',
      voiceFrom: '4155553999',
      settings: { sendRatePerSecond: null, refillLeadDays: 4 },
    }).expect(200);
    expect(res.body).toMatchObject({
      id: created.id,
      name: 'Corner Drug & Gifts',
      timezone: 'America/Chicago',
      smsFrom: created.smsFrom,
      voiceFrom: '+14155553999',
      settings: { readyCoalesceSeconds: 0, refillLeadDays: 4 },
    });
    expect(res.body.settings).not.toHaveProperty('sendRatePerSecond');
    expect(Date.parse(res.body.updatedAt)).toBeGreaterThanOrEqual(Date.parse(created.updatedAt));

    // The schedule is checked once merged with what is stored and the defaults.
    const bad = await patch({ settings: { pickupReminderDays: [3, 12] } }).expect(422);
    expect(bad.body.message).toEqual([
      'settings.returnToStockDay must be after the last of settings.pickupReminderDays (12)',
    ]);
    await patch({ settings: { pickupReminderDays: [3, 12], returnToStockDay: 14 } }).expect(200);

    await patch({ voiceFrom: null })
      .expect(200)
      .expect((r) => expect(r.body.voiceFrom).toBeNull());
    expect((await patch({ name: null }).expect(422)).body.message).toContain(
      'name must be text of 1 to 200 characters, not blank, without control characters',
    );
    expect((await patch({ timezone: 'Nowhere/Land' }).expect(422)).body.message.join()).toContain('timezone');
  });

  describe('message templates (settings.templates)', () => {
    const ready = `{pharmacy}: Your order is at the counter. Questions? Call {phone}. ${OPT_OUT_LINE.en}`;
    const listo = `{pharmacy}: Su pedido ya se puede recoger. Llame al {phone}. ${OPT_OUT_LINE.es}`;
    const lastCall = `{pharmacy}: Back to stock on {date}. ${OPT_OUT_LINE.en}`;
    const patchOf = (id: string) => (body: object) =>
      request(t.http).patch(`/v1/pharmacies/${id}`).set('Authorization', `Bearer ${admin}`).send(body);

    it('saves valid templates and returns them, on create and on read', async () => {
      const templates = { ready: { en: ready, es: listo }, unclaimed_pickup_3: { en: lastCall } };
      const res = await create(valid({ settings: { templates } })).expect(201);
      expect(res.body.settings).toEqual({ templates });
      const read = await request(t.http)
        .get(`/v1/pharmacies/${res.body.id}`)
        .set('Authorization', `Bearer ${admin}`)
        .expect(200);
      expect(read.body.settings.templates).toEqual(templates);
      const [row] = await t.db.query(`SELECT settings FROM pharmacies WHERE id = $1`, [res.body.id]);
      expect(row.settings).toEqual({ templates });
    });

    it.each([
      [{ reddy: { en: ready } }, 'settings.templates.reddy is not a known template'],
      [
        { ready: { en: ready.replace('{phone}', '{fone}') } },
        'settings.templates.ready.en uses unknown placeholder {fone}',
      ],
      [
        { ready: { en: ready.replace('order', '{drug}') } },
        'settings.templates.ready.en uses {drug}, which a template may not',
      ],
      [
        { ready: { en: ready.replace('order', 'order ({date})') } },
        'settings.templates.ready.en uses {date}, which only unclaimed_pickup_3 may use',
      ],
      [
        { ready: { en: ready.replace(` ${OPT_OUT_LINE.en}`, '') } },
        'settings.templates.ready.en must end with the opt-out line "Reply STOP to opt out."',
      ],
      [
        { ready: { en: ready.replace('{pharmacy}', 'We') } },
        'settings.templates.ready.en must name the pharmacy with {pharmacy}',
      ],
      [
        { ready: { en: ready.replace('order', 'order'.repeat(20)) } },
        'settings.templates.ready.en is 190 characters when rendered; one SMS segment allows 160',
      ],
      [
        { ready: { es: listo.replace('Su pedido', 'Su pedido está listo y') } },
        'settings.templates.ready.es is 108 characters when rendered; one SMS segment allows 70 in UCS-2, which "á" needs (160 in GSM-7)',
      ],
      [{ ready: { fr: ready } }, 'settings.templates.ready.fr is not a known language (en or es)'],
    ])('answers 422 naming the problem for templates %j', async (templates, problem) => {
      const res = await create(valid({ settings: { templates } })).expect(422);
      expect(res.body.message).toEqual([expect.stringContaining(problem)]);
    });

    it('checks a template against the name it is saved with: a long name leaves less room', async () => {
      const fits = ready.replace('order', 'order'.repeat(12)); // 150 characters as "Corner Drug"
      await create(valid({ settings: { templates: { ready: { en: fits } } } })).expect(201);
      const res = await create(
        valid({
          name: 'Corner Drug & Gifts of Greater Springfield',
          settings: { templates: { ready: { en: fits } } },
        }),
      ).expect(422);
      expect(res.body.message).toEqual([
        'settings.templates.ready.en is 181 characters when rendered; one SMS segment allows 160',
      ]);
    });

    it('merges templates on PATCH by key and language, null removing one', async () => {
      const { body } = await create(
        valid({ settings: { readyCoalesceSeconds: 0, templates: { ready: { en: ready, es: listo } } } }),
      ).expect(201);
      const patch = patchOf(body.id);
      const res = await patch({
        settings: { templates: { ready: { es: null }, unclaimed_pickup_3: { en: lastCall } } },
      }).expect(200);
      expect(res.body.settings).toEqual({
        readyCoalesceSeconds: 0,
        templates: { ready: { en: ready }, unclaimed_pickup_3: { en: lastCall } },
      });
      const cleared = await patch({
        settings: { templates: { ready: null, unclaimed_pickup_3: null } },
      }).expect(200);
      expect(cleared.body.settings).toEqual({ readyCoalesceSeconds: 0 });
      const bad = await patch({ settings: { templates: { refill_due: { en: 'Refill now.' } } } }).expect(422);
      expect(bad.body.message).toEqual([
        'settings.templates.refill_due.en must name the pharmacy with {pharmacy}',
        'settings.templates.refill_due.en must end with the opt-out line "Reply STOP to opt out."',
      ]);
    });

    it('refuses a rename that would make a saved template overflow, and keeps the pharmacy as it was', async () => {
      const fits = ready.replace('order', 'order'.repeat(12)); // 150 characters as "Corner Drug"
      const { body } = await create(valid({ settings: { templates: { ready: { en: fits } } } })).expect(201);
      const patch = patchOf(body.id);
      const res = await patch({ name: 'Corner Drug & Gifts of Greater Springfield' }).expect(422);
      expect(res.body.message).toEqual([
        'settings.templates.ready.en is 181 characters when rendered; one SMS segment allows 160',
      ]);
      // The same with other settings patched at once, and a new callback phone is checked too.
      await patch({
        name: 'Corner Drug & Gifts of Greater Springfield',
        settings: { sendRatePerSecond: 5 },
      }).expect(422);
      const [row] = await t.db.query(`SELECT name, settings FROM pharmacies WHERE id = $1`, [body.id]);
      expect(row).toEqual({ name: 'Corner Drug', settings: { templates: { ready: { en: fits } } } });
      // A short rename is fine; so is a rename that removes the template in the same request.
      await patch({ name: 'Corner Drugs' }).expect(200);
      const both = await patch({
        name: 'Corner Drug & Gifts of Greater Springfield',
        settings: { templates: { ready: null } },
      }).expect(200);
      expect(both.body).toMatchObject({ name: 'Corner Drug & Gifts of Greater Springfield', settings: {} });
    });

    it('refuses a new callback phone that would make a saved template overflow', async () => {
      // Exactly 160 characters with "Corner Drug" and a 12-character phone.
      const full = ready.replace('order', 'order'.repeat(12) + 'x'.repeat(10));
      const { body } = await create(valid({ settings: { templates: { ready: { en: full } } } })).expect(201);
      await patchOf(body.id)({ callbackPhone: '(415) 555-0142' }).expect(200);
      const res = await patchOf(body.id)({ callbackPhone: '+44 20 7946 0958' }).expect(422);
      expect(res.body.message).toEqual([
        'settings.templates.ready.en is 161 characters when rendered; one SMS segment allows 160',
      ]);
    });

    it('documents the templates in OpenAPI', async () => {
      const res = await request(t.http).get('/docs-json').expect(200);
      expect(Object.keys(res.body.components.schemas.PharmacySettingsDto.properties)).toContain('templates');
      expect(Object.keys(res.body.components.schemas.PharmacyTemplatesDto.properties)).toEqual(
        expect.arrayContaining(['ready', 'unclaimed_pickup_3', 'adherence_gap']),
      );
    });
  });

  it('answers 404 for an unknown pharmacy and 400 naming a malformed id', async () => {
    await request(t.http)
      .patch('/v1/pharmacies/6f1c2a8e-6a39-4e8e-9a51-1d3c7e1e2b11')
      .set('Authorization', `Bearer ${admin}`)
      .send({ name: 'x' })
      .expect(404);
    const res = await request(t.http)
      .get('/v1/pharmacies/not-a-uuid')
      .set('Authorization', `Bearer ${admin}`)
      .expect(400);
    expect(res.body.message).toEqual(['id must be a UUID']);
  });

  it('lets the roles read their own pharmacy, hides another one, and keeps writes to unscoped admins', async () => {
    const { body: mine } = await create(valid()).expect(201);
    const { body: theirs } = await create(valid()).expect(201);
    const [pharmacy] = [
      { id: mine.id, name: mine.name, smsFrom: mine.smsFrom, callbackPhone: mine.callbackPhone },
    ];
    for (const role of ['staff', 'integration', 'auditor'] as const) {
      const key = await t.given.apiKey(role, pharmacy);
      await request(t.http)
        .get(`/v1/pharmacies/${mine.id}`)
        .set('Authorization', `Bearer ${key}`)
        .expect(200);
      await request(t.http)
        .get(`/v1/pharmacies/${theirs.id}`)
        .set('Authorization', `Bearer ${key}`)
        .expect(404);
    }
    const staff = await t.given.apiKey('staff', pharmacy);
    await create(valid(), staff).expect(403);
    await request(t.http)
      .patch(`/v1/pharmacies/${mine.id}`)
      .set('Authorization', `Bearer ${staff}`)
      .send({ name: 'x' })
      .expect(403);

    const scopedAdmin = await t.given.apiKey('admin', pharmacy);
    await create(valid(), scopedAdmin).expect(403);
    await request(t.http)
      .patch(`/v1/pharmacies/${theirs.id}`)
      .set('Authorization', `Bearer ${scopedAdmin}`)
      .send({ name: 'x' })
      .expect(404);
    await request(t.http).get(`/v1/pharmacies/${mine.id}`).expect(401);
  });

  it('documents the routes and the settings shape in OpenAPI', async () => {
    const res = await request(t.http).get('/docs-json').expect(200);
    expect(Object.keys(res.body.paths)).toEqual(
      expect.arrayContaining([
        '/v1/pharmacies',
        '/v1/pharmacies/{id}',
        '/v1/patients',
        '/v1/patients/{id}',
        '/v1/patients/{id}/consent/{channel}',
        '/v1/patients/{id}/consent',
        '/v1/audit/access',
        '/webhooks/twilio/sms',
        '/webhooks/twilio/voice/gather',
      ]),
    );
    expect(Object.keys(res.body.components.schemas.PharmacySettingsDto.properties)).toEqual(
      expect.arrayContaining(['quietHours', 'pickupReminderDays', 'reminderCaps']),
    );
  });
});
