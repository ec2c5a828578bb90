import fc from 'fast-check';
import { OPT_OUT_LINE } from '../messaging/templates';
import {
  DEFAULT_PHARMACY_SETTINGS,
  mergeSettingsOverrides,
  refillLeadDaysFor,
  resolveSettings,
  validatePharmacySettings,
} from './pharmacy-settings';

describe('pharmacy settings', () => {
  it('accepts every setting within range and keeps only what was given', () => {
    const input = {
      quietHours: { start: '08:30', end: '21:00' },
      readyCoalesceSeconds: 0,
      refillLeadDays: 3,
      pickupReminderDays: [1, 3],
      returnToStockDay: 4,
      adherenceGraceDays: 60,
      sendRatePerSecond: 1000,
      reminderCaps: { perDay: 0, perWeek: 50 },
    };
    expect(validatePharmacySettings(input)).toEqual({ overrides: input, problems: [] });
    expect(validatePharmacySettings({ readyCoalesceSeconds: 30 })).toEqual({
      overrides: { readyCoalesceSeconds: 30 },
      problems: [],
    });
  });

  it.each([
    [{ colour: 'blue' }, 'settings.colour is not a known setting'],
    [
      { quietHours: { start: '09:00', end: '20:00', lunch: '12:00' } },
      'settings.quietHours.lunch is not a known setting',
    ],
    [
      { quietHours: { start: '9:00', end: '20:00' } },
      'settings.quietHours.start must be a time of day as HH:MM (24-hour)',
    ],
    [
      { quietHours: { start: '09:00', end: '24:00' } },
      'settings.quietHours.end must be a time of day as HH:MM (24-hour)',
    ],
    [{ quietHours: { start: '09:00' } }, 'settings.quietHours.end is required'],
    [
      { quietHours: { start: '20:00', end: '09:00' } },
      'settings.quietHours.end must be later than settings.quietHours.start (a window within one day)',
    ],
    [{ quietHours: 'always' }, 'settings.quietHours must be an object'],
    [{ readyCoalesceSeconds: 3601 }, 'settings.readyCoalesceSeconds must be an integer from 0 to 3600'],
    [{ readyCoalesceSeconds: 1.5 }, 'settings.readyCoalesceSeconds must be an integer from 0 to 3600'],
    [{ readyCoalesceSeconds: '60' }, 'settings.readyCoalesceSeconds must be an integer from 0 to 3600'],
    [{ refillLeadDays: 31 }, 'settings.refillLeadDays must be an integer from 0 to 30'],
    [{ pickupReminderDays: [] }, 'settings.pickupReminderDays must be an array of 1 to 5 days'],
    [
      { pickupReminderDays: [1, 2, 3, 4, 5, 6], returnToStockDay: 7 },
      'settings.pickupReminderDays must be an array of 1 to 5 days',
    ],
    [{ pickupReminderDays: [2, 31] }, 'settings.pickupReminderDays.1 must be an integer from 1 to 30'],
    [{ pickupReminderDays: [5, 2] }, 'settings.pickupReminderDays must be in strictly ascending order'],
    [{ pickupReminderDays: [2, 2] }, 'settings.pickupReminderDays must be in strictly ascending order'],
    [
      { returnToStockDay: 9 },
      'settings.returnToStockDay must be after the last of settings.pickupReminderDays (9)',
    ],
    [
      { pickupReminderDays: [3, 12] },
      'settings.returnToStockDay must be after the last of settings.pickupReminderDays (12)',
    ],
    [{ returnToStockDay: 61 }, 'settings.returnToStockDay must be an integer from 1 to 60'],
    [{ adherenceGraceDays: -1 }, 'settings.adherenceGraceDays must be an integer from 0 to 60'],
    [{ sendRatePerSecond: 0 }, 'settings.sendRatePerSecond must be an integer from 1 to 1000'],
    [
      { reminderCaps: { perDay: 11, perWeek: 3 } },
      'settings.reminderCaps.perDay must be an integer from 0 to 10',
    ],
    [
      { reminderCaps: { perDay: 1, perWeek: 51 } },
      'settings.reminderCaps.perWeek must be an integer from 0 to 50',
    ],
    [
      { reminderCaps: { perDay: 5, perWeek: 1 } },
      'settings.reminderCaps.perDay must not be more than settings.reminderCaps.perWeek (a day is part of a week)',
    ],
  ])('refuses %j naming the path', (input, problem) => {
    const result = validatePharmacySettings(input);
    expect(result.problems).toContain(problem);
    expect(result.overrides).toEqual({});
  });

  it('refuses a settings value that is not an object', () => {
    expect(validatePharmacySettings([1]).problems).toEqual(['settings must be an object']);
    expect(validatePharmacySettings('x').problems).toEqual(['settings must be an object']);
  });

  it('drops a key set to null, so its default applies again', () => {
    expect(
      validatePharmacySettings({ readyCoalesceSeconds: null, refillLeadDays: null, sendRatePerSecond: 5 }),
    ).toEqual({
      overrides: { sendRatePerSecond: 5 },
      problems: [],
    });
  });

  it('resolves the defaults of DESIGN.md when nothing is overridden', () => {
    expect(resolveSettings({})).toEqual({
      quietHours: { start: '09:00', end: '20:00' },
      readyCoalesceSeconds: 60,
      refillLeadDays: null,
      pickupReminderDays: [2, 5, 9],
      returnToStockDay: 10,
      adherenceGraceDays: 7,
      sendRatePerSecond: 10,
      reminderCaps: { perDay: 1, perWeek: 3 },
      templates: {},
    });
    expect(resolveSettings(null)).toEqual(resolveSettings({}));
  });

  it('resolves overrides over defaults and ignores a stored value that does not validate', () => {
    const resolved = resolveSettings({
      readyCoalesceSeconds: 0,
      sendRatePerSecond: 'fast',
      pickupReminderDays: [3, 12],
      junk: 1,
    });
    expect(resolved.readyCoalesceSeconds).toBe(0);
    expect(resolved.sendRatePerSecond).toBe(10);
    expect(resolved.pickupReminderDays).toEqual([3, 12]);
    // Stored before the rule held: return to stock still comes after the last reminder.
    expect(resolved.returnToStockDay).toBe(13);
    expect(resolved).not.toHaveProperty('junk');
  });

  it('never lets a caller mutate the defaults through a resolved copy', () => {
    const resolved = resolveSettings({});
    resolved.pickupReminderDays.push(20);
    resolved.quietHours.start = '00:00';
    expect(DEFAULT_PHARMACY_SETTINGS.pickupReminderDays).toEqual([2, 5, 9]);
    expect(DEFAULT_PHARMACY_SETTINGS.quietHours.start).toBe('09:00');
  });

  it('takes the refill lead time from the override, else 5 days up to a 34-day supply and 7 beyond', () => {
    expect(refillLeadDaysFor({ refillLeadDays: null }, 30)).toBe(5);
    expect(refillLeadDaysFor({ refillLeadDays: null }, 34)).toBe(5);
    expect(refillLeadDaysFor({ refillLeadDays: null }, 35)).toBe(7);
    expect(refillLeadDaysFor({ refillLeadDays: 0 }, 90)).toBe(0);
  });

  it('resolves whatever it validated to the same values, and accepts only what resolves cleanly', () => {
    const anything = fc.dictionary(
      fc.constantFrom(
        'quietHours',
        'readyCoalesceSeconds',
        'refillLeadDays',
        'pickupReminderDays',
        'returnToStockDay',
        'reminderCaps',
        'other',
      ),
      fc.oneof(
        fc.integer({ min: -5, max: 70 }),
        fc.array(fc.integer({ min: 0, max: 32 }), { maxLength: 6 }),
        fc.record({
          start: fc.constantFrom('08:00', '09:00', '25:00'),
          end: fc.constantFrom('07:00', '20:00'),
        }),
        fc.record({ perDay: fc.integer({ min: -1, max: 12 }), perWeek: fc.integer({ min: -1, max: 52 }) }),
        fc.constant(null),
      ),
    );
    fc.assert(
      fc.property(anything, (input) => {
        const { overrides, problems } = validatePharmacySettings(input);
        if (problems.length > 0) return;
        const resolved = resolveSettings(overrides);
        for (const [key, value] of Object.entries(overrides)) {
          expect(resolved[key as keyof typeof resolved]).toEqual(value);
        }
        expect(resolved.returnToStockDay).toBeGreaterThan(
          resolved.pickupReminderDays[resolved.pickupReminderDays.length - 1],
        );
      }),
    );
  });

  describe('templates', () => {
    const pharmacy = { pharmacyName: 'Main Street Pharmacy', callbackPhone: '+15551234567' };
    const ready = `{pharmacy}: Ready at the counter. Questions? {phone}. ${OPT_OUT_LINE.en}`;
    const listo = `{pharmacy}: Ya puede recoger. Llame al {phone}. ${OPT_OUT_LINE.es}`;

    it('keeps valid templates, dropping those set to null and what is left empty', () => {
      expect(
        validatePharmacySettings(
          { templates: { ready: { en: ready, es: null }, refill_due: null, adherence_gap: { es: null } } },
          'settings',
          pharmacy,
        ),
      ).toEqual({ overrides: { templates: { ready: { en: ready } } }, problems: [] });
      expect(validatePharmacySettings({ templates: { ready: null } }, 'settings', pharmacy)).toEqual({
        overrides: {},
        problems: [],
      });
      expect(validatePharmacySettings({ templates: null }, 'settings', pharmacy)).toEqual({
        overrides: {},
        problems: [],
      });
    });

    it.each<[unknown, string]>([
      [{ reddy: { en: ready } }, 'settings.templates.reddy is not a known template'],
      [{ ready: { fr: ready } }, 'settings.templates.ready.fr is not a known language (en or es)'],
      [{ ready: 'hi' }, 'settings.templates.ready must be an object with en and/or es'],
      [{ ready: { en: 5 } }, 'settings.templates.ready.en must be a string'],
      ['hi', 'settings.templates must be an object'],
      [
        { ready: { en: ready.replace('{phone}', '{fone}') } },
        'settings.templates.ready.en uses unknown placeholder {fone}',
      ],
      [
        { ready: { es: listo.replace(OPT_OUT_LINE.es, OPT_OUT_LINE.en) } },
        'settings.templates.ready.es must end with the opt-out line "Responda ALTO para cancelar."',
      ],
      [
        { ready: { en: ready.replace('Ready', 'x'.repeat(100)) } },
        'settings.templates.ready.en is 186 characters when rendered; one SMS segment allows 160',
      ],
    ])('refuses templates %j naming the path', (templates, problem) => {
      const result = validatePharmacySettings({ templates, readyCoalesceSeconds: 0 }, 'settings', pharmacy);
      expect(result.problems).toEqual([problem]);
      expect(result.overrides).toEqual({});
    });

    it('checks the segment against the pharmacy it belongs to', () => {
      const long = ready.replace('Ready', 'x'.repeat(60));
      expect(
        validatePharmacySettings({ templates: { ready: { en: long } } }, 'settings', pharmacy).problems,
      ).toEqual([]);
      expect(
        validatePharmacySettings({ templates: { ready: { en: long } } }, 'settings', {
          ...pharmacy,
          pharmacyName: 'Community Pharmacy & Wellness Center of Greater Springfield',
        }).problems,
      ).toEqual([expect.stringMatching(/^settings\.templates\.ready\.en is 1\d\d characters when rendered/)]);
      // Without the pharmacy only the form can be checked.
      expect(validatePharmacySettings({ templates: { ready: { en: long } } }).problems).toEqual([]);
    });

    it('merges a patch key by key and language by language; null removes', () => {
      const stored = {
        readyCoalesceSeconds: 0,
        templates: { ready: { en: ready, es: listo }, refill_due: { en: ready } },
      };
      const merged = mergeSettingsOverrides(stored, {
        sendRatePerSecond: 5,
        templates: { ready: { es: null }, refill_due: null, adherence_gap: { en: ready } },
      });
      expect(validatePharmacySettings(merged, 'settings', pharmacy)).toEqual({
        overrides: {
          readyCoalesceSeconds: 0,
          sendRatePerSecond: 5,
          templates: { ready: { en: ready }, adherence_gap: { en: ready } },
        },
        problems: [],
      });
      expect(validatePharmacySettings(mergeSettingsOverrides(stored, { templates: null })).overrides).toEqual(
        {
          readyCoalesceSeconds: 0,
        },
      );
      expect(mergeSettingsOverrides({}, { templates: { ready: { en: ready } } })).toEqual({
        templates: { ready: { en: ready } },
      });
      expect(mergeSettingsOverrides(stored, 'x')).toBe('x');
    });

    it('resolves each well-formed stored template and ignores the others, one by one', () => {
      const resolved = resolveSettings({
        templates: {
          ready: { en: ready, es: 'sin línea de baja {pharmacy}' },
          refill_due: { en: `{drug} ${OPT_OUT_LINE.en}` },
          unknown: { en: ready },
          adherence_gap: 'x',
        },
      });
      expect(resolved.templates).toEqual({ ready: { en: ready } });
      expect(resolveSettings({ templates: [] }).templates).toEqual({});
    });
  });
});
