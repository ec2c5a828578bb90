import fc from 'fast-check';
import { isGsm7, smsLength, toGsm7 } from './gsm7';
import {
  hasControlCharacter,
  MAX_CALLBACK_PHONE_LENGTH,
  MAX_RETURN_TO_STOCK_DATE_LENGTH,
  OPT_OUT_LINE,
  TEMPLATE_KEYS,
  renderConfirmation,
  renderSms,
  renderVoice,
  smsPharmacyName,
  templateKey,
  validateTemplate,
  type Language,
  type NotificationKind,
  type PharmacyTemplates,
  type TemplateKey,
  type TemplateVars,
} from './templates';

const KINDS: readonly NotificationKind[] = [
  'ready',
  'refill_due',
  'renewal_needed',
  'unclaimed_pickup',
  'adherence_gap',
];
const LANGUAGES: readonly Language[] = ['en', 'es'];
const STEPS = [1, 2, 3] as const;

const base = {
  pharmacyName: 'Main Street Pharmacy',
  callbackPhone: '+15551234567',
  returnToStockDate: 'Nov 30',
};

/** Every kind × language, unclaimed pickup once per step. */
const MESSAGES: [NotificationKind, Language, 1 | 2 | 3][] = KINDS.flatMap((kind) =>
  LANGUAGES.flatMap((language) =>
    (kind === 'unclaimed_pickup' ? STEPS : ([1] as const)).map(
      (step): [NotificationKind, Language, 1 | 2 | 3] => [kind, language, step],
    ),
  ),
);

function words(text: string): number {
  return text.split(/\s+/).filter((word) => word !== '').length;
}

describe('renderSms', () => {
  it.each([
    [
      'ready',
      'en',
      1,
      'Main Street Pharmacy: Your prescription is ready for pickup. Questions? Call +15551234567. Reply STOP to opt out.',
    ],
    [
      'ready',
      'en',
      3,
      'Main Street Pharmacy: 3 prescriptions are ready for pickup. Questions? Call +15551234567. Reply STOP to opt out.',
    ],
    [
      'ready',
      'es',
      1,
      'Main Street Pharmacy: Su receta ya se puede recoger. ¿Preguntas? Llame al +15551234567. Responda ALTO para cancelar.',
    ],
    [
      'ready',
      'es',
      3,
      'Main Street Pharmacy: 3 recetas ya se pueden recoger. ¿Preguntas? Llame al +15551234567. Responda ALTO para cancelar.',
    ],
    [
      'refill_due',
      'en',
      1,
      'Main Street Pharmacy: Your prescription is due for a refill. Call +15551234567 to refill it. Reply STOP to opt out.',
    ],
    [
      'renewal_needed',
      'es',
      1,
      'Main Street Pharmacy: Su receta ya no tiene resurtidos. Llame al +15551234567 y pediremos una nueva a su médico. Responda ALTO para cancelar.',
    ],
    [
      'adherence_gap',
      'en',
      2,
      'Main Street Pharmacy: 2 of your prescriptions look past due for a refill. Call +15551234567 and we can help. Reply STOP to opt out.',
    ],
  ] as const)('%s in %s for %i prescription(s)', (kind, language, count, expected) => {
    expect(renderSms(kind, language, { ...base, count })).toBe(expected);
  });

  it.each([
    [
      1,
      'en',
      'Main Street Pharmacy: Your prescription is still waiting for pickup. Questions? Call +15551234567. Reply STOP to opt out.',
    ],
    [
      2,
      'en',
      'Main Street Pharmacy: Reminder: your prescription is still waiting for pickup. Questions? Call +15551234567. Reply STOP to opt out.',
    ],
    [
      3,
      'en',
      'Main Street Pharmacy: Your prescription returns to stock on Nov 30. Please pick it up before then. Call +15551234567. Reply STOP to opt out.',
    ],
    [
      3,
      'es',
      'Main Street Pharmacy: Su receta regresa al inventario el Nov 30. Pase a recogerla antes. Llame al +15551234567. Responda ALTO para cancelar.',
    ],
  ] as const)('unclaimed pickup step %i in %s', (step, language, expected) => {
    expect(renderSms('unclaimed_pickup', language, { ...base, step })).toBe(expected);
  });

  it.each(MESSAGES)(
    '%s in %s (step %i) is one GSM-7 segment naming the pharmacy, ending with the opt-out line',
    (kind, language, step) => {
      for (const count of [1, 2, 20, 99]) {
        const text = renderSms(kind, language, { ...base, count, step });
        expect(isGsm7(text)).toBe(true);
        expect(smsLength(text).fitsOneSegment).toBe(true);
        expect(text.startsWith(`${base.pharmacyName}: `)).toBe(true);
        expect(text.endsWith(` ${OPT_OUT_LINE[language]}`)).toBe(true);
        if (count > 1) expect(text).toContain(String(count));
      }
    },
  );

  it.each(MESSAGES)(
    '%s in %s (step %i) keeps its call to action with the longest name, phone and date',
    (kind, language, step) => {
      const text = renderSms(kind, language, {
        pharmacyName: 'Community Pharmacy & Wellness Center of Greater Springfield and Shelbyville',
        callbackPhone: '+123456789012345',
        returnToStockDate: 'D'.repeat(MAX_RETURN_TO_STOCK_DATE_LENGTH),
        count: 99,
        step,
      });
      expect(smsLength(text)).toMatchObject({ encoding: 'GSM-7', fitsOneSegment: true });
      expect(text.startsWith('Community Pharmacy & Wellness')).toBe(true);
      expect(text.endsWith(OPT_OUT_LINE[language])).toBe(true);
      if (kind === 'unclaimed_pickup' && step === 3) expect(text).toContain('D'.repeat(16));
      if (kind === 'refill_due' || kind === 'renewal_needed' || kind === 'adherence_gap') {
        expect(text).toContain('+123456789012345');
      }
    },
  );

  it('carries no drug name or patient data: only the pharmacy name, phone, count and date vary', () => {
    for (const [kind, language, step] of MESSAGES) {
      const a = renderSms(kind, language, { ...base, step, count: 2 });
      const b = renderSms(kind, language, {
        pharmacyName: 'Other Drug',
        callbackPhone: '+15559876543',
        returnToStockDate: 'Dec 1',
        step,
        count: 2,
      });
      const strip = (text: string, vars: typeof base) =>
        text
          .replace(vars.pharmacyName, '<pharmacy>')
          .replace(vars.callbackPhone, '<phone>')
          .replace(vars.returnToStockDate, '<date>');
      expect(strip(a, base)).toBe(
        strip(b, { pharmacyName: 'Other Drug', callbackPhone: '+15559876543', returnToStockDate: 'Dec 1' }),
      );
    }
  });

  it('transliterates a name to GSM-7 rather than fall back to UCS-2', () => {
    const text = renderSms('ready', 'es', { ...base, pharmacyName: 'Farmacia Núñez 💊' });
    expect(text.startsWith('Farmacia Nuñez: ')).toBe(true);
    expect(isGsm7(text)).toBe(true);
  });

  it('cuts a long name at a word boundary, without trailing punctuation', () => {
    const name =
      'Smith & Sons Family Pharmacy & Compounding & Home Medical Equipment & Durable Supplies of North Springfield and Shelbyville Heights';
    const text = renderSms('renewal_needed', 'en', { ...base, pharmacyName: name, count: 12 });
    expect(smsLength(text).fitsOneSegment).toBe(true);
    const shown = text.slice(0, text.indexOf(': '));
    expect(name.startsWith(shown)).toBe(true);
    expect(shown.length).toBeGreaterThanOrEqual(20);
    expect(name[shown.length]).toBe(' ');
    expect(shown).toMatch(/[A-Za-z]$/);
  });

  it('sends a name with nothing transliterable as is, in UCS-2, within 70 units', () => {
    const text = renderSms('ready', 'en', { ...base, pharmacyName: 'さくら薬局' });
    expect(text).toBe('さくら薬局: Your prescription is ready for pickup. Reply STOP to opt out.');
    expect(smsLength(text)).toMatchObject({ encoding: 'UCS-2', fitsOneSegment: true });
  });

  it.each<[string, Partial<TemplateVars>]>([
    ['pharmacyName is empty', { pharmacyName: ' \n ' }],
    ['callbackPhone is empty', { callbackPhone: '' }],
    ['callbackPhone is longer', { callbackPhone: '+1 (555) 123-4567 ext 89' }],
    ['count must be', { count: 0 }],
    ['count must be', { count: 1.5 }],
    ['count must be', { count: 100 }],
  ])('throws "%s" for %j', (message, overrides) => {
    expect(() => renderSms('ready', 'en', { ...base, ...overrides })).toThrow(message);
  });

  it('requires a return-to-stock date of reasonable length for step 3 only', () => {
    const vars = { pharmacyName: 'A', callbackPhone: '+15551234567' };
    expect(() => renderSms('unclaimed_pickup', 'en', { ...vars, step: 3 })).toThrow(
      'returnToStockDate is required',
    );
    expect(() =>
      renderSms('unclaimed_pickup', 'en', { ...vars, step: 3, returnToStockDate: 'x'.repeat(17) }),
    ).toThrow('returnToStockDate is longer');
    expect(() => renderSms('unclaimed_pickup', 'en', { ...vars, step: 2 })).not.toThrow();
  });

  it('defaults to one prescription and reminder step 1', () => {
    expect(renderSms('unclaimed_pickup', 'en', base)).toBe(
      renderSms('unclaimed_pickup', 'en', { ...base, count: 1, step: 1 }),
    );
  });

  it('fits one segment, ends with the opt-out line and names the pharmacy for any name, kind, language, count and step', () => {
    const name = fc.oneof(
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 80 }),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 300 }),
      fc.string({
        unit: fc.constantFrom('a', 'B', ' ', 'é', 'á', '€', '&', '-', '😀', '👨‍👩‍👧', '薬', '\u0301', '\n'),
        minLength: 1,
        maxLength: 400,
      }),
      fc.string({ unit: 'grapheme-ascii', minLength: 150, maxLength: 1000 }),
    );
    const phone = fc.oneof(
      fc.constant('+15551234567'),
      fc.stringMatching(/^\+[1-9]\d{6,14}$/),
      fc.constant('(555) 123-4567'),
    );
    const date = fc.oneof(
      fc.constantFrom('Nov 30', '30 nov', '30 de noviembre', '11/30/2025'),
      fc
        .string({ unit: fc.constantFrom(...'aZ09 /.-'), minLength: 1, maxLength: 16 })
        .filter((d) => d.trim() !== ''),
    );
    const message = fc.constantFrom(...MESSAGES);
    fc.assert(
      fc.property(
        name,
        phone,
        date,
        fc.integer({ min: 1, max: 20 }),
        message,
        (pharmacyName, callbackPhone, returnToStockDate, count, [kind, language, step]) => {
          const vars: TemplateVars = { pharmacyName, callbackPhone, returnToStockDate, count, step };
          let shownName: string;
          try {
            shownName = smsPharmacyName(pharmacyName);
          } catch {
            expect(() => renderSms(kind, language, vars)).toThrow('pharmacyName is empty');
            return;
          }
          const text = renderSms(kind, language, vars);
          expect(smsLength(text).fitsOneSegment).toBe(true);
          expect(text.endsWith(` ${OPT_OUT_LINE[language]}`)).toBe(true);
          let kept = shownName.length;
          while (kept > 0 && !text.startsWith(`${shownName.slice(0, kept)}: `)) kept -= 1;
          expect(kept).toBeGreaterThanOrEqual(1);
          if (/^[A-Za-z]{1,10}( [A-Za-z]{1,10})*$/.test(shownName)) {
            expect(kept).toBeGreaterThanOrEqual(Math.min(shownName.length, 10));
          }
          if (kind === 'unclaimed_pickup' && step === 3)
            expect(text).toContain(returnToStockDate.replace(/\s+/g, ' ').trim());
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('keeps at least 10 characters of a long name made of words', () => {
    const word = fc.string({ unit: fc.constantFrom(...'abcXYZ'), minLength: 1, maxLength: 10 });
    fc.assert(
      fc.property(
        fc.array(word, { minLength: 10, maxLength: 40 }),
        fc.constantFrom(...MESSAGES),
        (nameWords, [kind, language, step]) => {
          const pharmacyName = nameWords.join(' ');
          const text = renderSms(kind, language, { ...base, pharmacyName, step, count: 20 });
          const shown = text.slice(0, text.indexOf(': '));
          expect(pharmacyName.startsWith(shown)).toBe(true);
          expect(shown.length).toBeGreaterThanOrEqual(10);
        },
      ),
    );
  });
});

describe('renderConfirmation', () => {
  const vars = { pharmacyName: 'Main Street Pharmacy', callbackPhone: '+15551234567' };

  it.each([
    [
      'opt_out',
      'en',
      'You are unsubscribed from Main Street Pharmacy messages. No more messages will be sent. Reply START to resubscribe.',
    ],
    [
      'help',
      'en',
      'Main Street Pharmacy: prescription notifications. Call +15551234567 for help. Reply STOP to opt out.',
    ],
    [
      'opt_in',
      'en',
      'Main Street Pharmacy: You are resubscribed to prescription alerts. Msg&data rates may apply. Reply HELP for help. Reply STOP to opt out.',
    ],
    [
      'opt_out',
      'es',
      'Se dio de baja de los mensajes de Main Street Pharmacy. No le enviaremos otros mensajes. Responda START para volver a suscribirse.',
    ],
    [
      'help',
      'es',
      'Main Street Pharmacy: avisos de recetas. Llame al +15551234567 para ayuda. Responda ALTO para cancelar.',
    ],
    [
      'opt_in',
      'es',
      'Main Street Pharmacy: Avisos de recetas reactivados. Pueden aplicar tarifas de mensajes y datos. Responda AYUDA para ayuda. Responda ALTO para cancelar.',
    ],
  ] as const)('%s in %s', (kind, language, expected) => {
    expect(renderConfirmation(kind, language, vars)).toBe(expected);
  });

  it('still confirms an opt-out when the callback phone is missing', () => {
    expect(renderConfirmation('opt_out', 'en', { pharmacyName: 'A', callbackPhone: '' })).toContain(
      'unsubscribed',
    );
    expect(() => renderConfirmation('help', 'en', { pharmacyName: 'A', callbackPhone: '' })).toThrow(
      'callbackPhone',
    );
  });

  it('fits one segment for any name; opt-in and help end with the opt-out line', () => {
    const name = fc.oneof(
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 300 }),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 300 }),
    );
    fc.assert(
      fc.property(
        name,
        fc.constantFrom('opt_out' as const, 'opt_in' as const, 'help' as const),
        fc.constantFrom(...LANGUAGES),
        (pharmacyName, kind, language) => {
          let shownName: string;
          try {
            shownName = smsPharmacyName(pharmacyName);
          } catch {
            return;
          }
          const text = renderConfirmation(kind, language, {
            pharmacyName,
            callbackPhone: '+123456789012345',
          });
          expect(smsLength(text).fitsOneSegment).toBe(true);
          expect(text).toContain(Array.from(shownName)[0]);
          if (kind === 'opt_out') expect(text).toMatch(/START/);
          else expect(text.endsWith(OPT_OUT_LINE[language])).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('renderVoice', () => {
  it.each(MESSAGES)(
    '%s in %s (step %i) names the pharmacy, speaks the phone digit by digit, under 60 words',
    (kind, language, step) => {
      for (const count of [1, 20]) {
        const text = renderVoice(kind, language, {
          pharmacyName: 'Smith and Sons Family Community Pharmacy of North Springfield Heights',
          callbackPhone: '+15551234567',
          returnToStockDate: language === 'en' ? 'November 30' : '30 de noviembre',
          count,
          step,
        });
        expect(text).toContain('Smith and Sons Family Community Pharmacy of North');
        expect(text).toContain('5 5 5, 1 2 3, 4 5 6 7');
        expect(text).not.toContain(OPT_OUT_LINE[language]);
        expect(words(text)).toBeLessThan(60);
      }
    },
  );

  it('speaks Spanish with its accents, since no SMS encoding applies', () => {
    expect(renderVoice('ready', 'es', base)).toBe(
      'Hola, este es un mensaje automático de Main Street Pharmacy. Su receta está lista para recoger. Si tiene preguntas, llámenos al 5 5 5, 1 2 3, 4 5 6 7.',
    );
  });

  it('never cuts a long name in the middle of an emoji', () => {
    const text = renderVoice('ready', 'en', { ...base, pharmacyName: 'A' + '\u{1F48A}'.repeat(40) });
    expect(text).not.toMatch(/\p{Cs}/u);
    expect(text).toContain('A\u{1F48A}');
  });

  it('names the return-to-stock date on step 3', () => {
    expect(renderVoice('unclaimed_pickup', 'en', { ...base, step: 3 })).toContain(
      'returned to stock on Nov 30',
    );
  });
});

describe('limits', () => {
  it('allows E.164 phones and dates such as "30 de noviembre"', () => {
    expect(MAX_CALLBACK_PHONE_LENGTH).toBeGreaterThanOrEqual('+123456789012345'.length);
    expect(MAX_RETURN_TO_STOCK_DATE_LENGTH).toBeGreaterThanOrEqual('30 de noviembre'.length);
  });
});

describe('pharmacy templates (settings.templates)', () => {
  const pharmacy = { pharmacyName: 'Main Street Pharmacy', callbackPhone: '+15551234567' };
  const en = (body: string) => `{pharmacy}: ${body} ${OPT_OUT_LINE.en}`;
  const es = (body: string) => `{pharmacy}: ${body} ${OPT_OUT_LINE.es}`;

  it.each<[NotificationKind, 1 | 2 | 3, Language, string, Partial<TemplateVars>, string]>([
    [
      'ready',
      1,
      'en',
      en('{count} order(s) at the counter. Questions? {phone}.'),
      { count: 3 },
      'Main Street Pharmacy: 3 order(s) at the counter. Questions? +15551234567. Reply STOP to opt out.',
    ],
    [
      'refill_due',
      1,
      'es',
      es('Hora de resurtir. Llame al {phone}.'),
      {},
      'Main Street Pharmacy: Hora de resurtir. Llame al +15551234567. Responda ALTO para cancelar.',
    ],
    [
      'unclaimed_pickup',
      2,
      'en',
      `Hi from {pharmacy}! Still here for you. ${OPT_OUT_LINE.en}`,
      {},
      'Hi from Main Street Pharmacy! Still here for you. Reply STOP to opt out.',
    ],
    [
      'unclaimed_pickup',
      3,
      'en',
      en('Back to stock {date}. Call {phone}.'),
      { returnToStockDate: 'Nov 30' },
      'Main Street Pharmacy: Back to stock Nov 30. Call +15551234567. Reply STOP to opt out.',
    ],
    [
      'adherence_gap',
      1,
      'en',
      en('{pharmacy} misses you.'),
      { pharmacyName: 'Farmacia Núñez' },
      'Farmacia Nuñez: Farmacia Nuñez misses you. Reply STOP to opt out.',
    ],
  ])(
    'renders the %s (step %i) %s override with its placeholders filled in',
    (kind, step, language, text, vars, expected) => {
      const overrides: PharmacyTemplates = { [templateKey(kind, step)]: { [language]: text } };
      expect(renderSms(kind, language, { ...base, ...vars, step }, overrides)).toBe(expected);
    },
  );

  it('uses the built-in text where the pharmacy has no template for that kind, step or language', () => {
    const overrides: PharmacyTemplates = {
      ready: { es: es('Lista.') },
      unclaimed_pickup_1: { en: en('Waiting.') },
    };
    for (const [kind, language, step] of MESSAGES) {
      const custom =
        (kind === 'ready' && language === 'es') ||
        (kind === 'unclaimed_pickup' && step === 1 && language === 'en');
      const text = renderSms(kind, language, { ...base, step }, overrides);
      if (custom) expect(text).not.toBe(renderSms(kind, language, { ...base, step }));
      else expect(text).toBe(renderSms(kind, language, { ...base, step }));
    }
  });

  it('maps each kind and reminder step to its template key', () => {
    expect(
      KINDS.flatMap((kind) =>
        kind === 'unclaimed_pickup' ? STEPS.map((s) => templateKey(kind, s)) : [templateKey(kind)],
      ),
    ).toEqual([...TEMPLATE_KEYS]);
  });

  it('falls back to the built-in text for a stored template that is invalid or does not fit once filled in', () => {
    const builtIn = renderSms('ready', 'en', base);
    for (const text of [
      'Your order is ready. Reply STOP to opt out.', // no {pharmacy}
      '{pharmacy}: Your order is ready.', // no opt-out line
      en('Your {drug} is ready.'),
      en('x'.repeat(150)),
      42,
    ]) {
      expect(renderSms('ready', 'en', base, { ready: { en: text as string } })).toBe(builtIn);
    }
    expect(renderSms('ready', 'en', base, 'junk' as unknown as PharmacyTemplates)).toBe(builtIn);
    expect(renderSms('ready', 'en', base, { ready: null } as unknown as PharmacyTemplates)).toBe(builtIn);
  });

  it('substitutes in one pass: a name that looks like a placeholder stays as it is', () => {
    const text = renderSms(
      'ready',
      'en',
      { ...base, pharmacyName: 'The {phone} Shop' },
      { ready: { en: en('Ready.') } },
    );
    expect(text).toBe('The {phone} Shop: Ready. Reply STOP to opt out.');
  });

  it('wins over the detailed text: a template never names the drug', () => {
    const text = renderSms(
      'ready',
      'en',
      { ...base, drugName: 'Lisinopril 10 mg' },
      { ready: { en: en('Ready.') } },
    );
    expect(text).toBe('Main Street Pharmacy: Ready. Reply STOP to opt out.');
  });

  it.each<[string, Language, string, string]>([
    ['ready', 'en', en('Ready, call {phone}, {count} items.'), ''],
    ['unclaimed_pickup_3', 'es', es('Regresa al inventario el {date}.'), ''],
    ['refill', 'en', en('Refill.'), 'settings.templates.refill is not a known template'],
    ['ready', 'en', en('Ready {when}.'), 'settings.templates.ready.en uses unknown placeholder {when}'],
    [
      'ready',
      'en',
      en('Ready {Pharmacy}.'),
      'settings.templates.ready.en uses unknown placeholder {Pharmacy}',
    ],
    [
      'ready',
      'en',
      en('Your {drug} is ready.'),
      'settings.templates.ready.en uses {drug}, which a template may not',
    ],
    [
      'ready',
      'en',
      en('Ready by {date}.'),
      'settings.templates.ready.en uses {date}, which only unclaimed_pickup_3 may use',
    ],
    [
      'unclaimed_pickup_3',
      'en',
      en('Pick it up soon.'),
      'settings.templates.unclaimed_pickup_3.en must give the return-to-stock date with {date}',
    ],
    [
      'ready',
      'en',
      en('Ready {soon.'),
      'settings.templates.ready.en has a { or } that is not part of a placeholder',
    ],
    [
      'ready',
      'en',
      `Your order is ready. ${OPT_OUT_LINE.en}`,
      'settings.templates.ready.en must name the pharmacy with {pharmacy}',
    ],
    [
      'ready',
      'en',
      '{pharmacy}: Ready.',
      'settings.templates.ready.en must end with the opt-out line "Reply STOP to opt out."',
    ],
    [
      'ready',
      'en',
      `{pharmacy}: Ready. Reply STOP to opt out. Thanks!`,
      'must end with the opt-out line "Reply STOP to opt out."',
    ],
    [
      'ready',
      'es',
      en('Lista.'),
      'settings.templates.ready.es must end with the opt-out line "Responda ALTO para cancelar."',
    ],
    ['ready', 'en', en('Ready.\u0007'), 'settings.templates.ready.en must not contain control characters'],
    [
      'ready',
      'en',
      en('Ready \ud800.'),
      'settings.templates.ready.en must be well-formed Unicode text (it holds half of a surrogate pair)',
    ],
    [
      'ready',
      'en',
      en('x'.repeat(116)),
      'settings.templates.ready.en is 161 characters when rendered; one SMS segment allows 160',
    ],
    [
      'refill_due',
      'es',
      es('Su receta está lista. Llame al {phone}.'),
      'settings.templates.refill_due.es is 95 characters when rendered; one SMS segment allows 70 in UCS-2, which "á" needs (160 in GSM-7)',
    ],
    [
      'ready',
      'en',
      en('[' + 'x'.repeat(112) + ']'),
      'settings.templates.ready.en is 161 characters when rendered; one SMS segment allows 160 (^ { } [ ] ~ | \\ and € count as 2)',
    ],
  ])('validates %s.%s %j: %s', (key, language, text, problem) => {
    const problems = validateTemplate(key, language, text, pharmacy);
    if (problem === '') expect(problems).toEqual([]);
    else expect(problems).toEqual([expect.stringContaining(problem)]);
  });

  it('sizes the worst case: 99 for {count} and the longest date, with the real name and phone', () => {
    // "Main Street Pharmacy: " + body + " Reply STOP to opt out." is 45 characters around the body.
    const fits = en('{count} {date} ' + 'x'.repeat(160 - 45 - 2 - 1 - 16 - 1));
    expect(validateTemplate('unclaimed_pickup_3', 'en', fits, pharmacy)).toEqual([]);
    expect(
      validateTemplate('unclaimed_pickup_3', 'en', fits + '', {
        ...pharmacy,
        pharmacyName: 'Main Street Pharmacy!',
      }),
    ).toEqual([
      'settings.templates.unclaimed_pickup_3.en is 161 characters when rendered; one SMS segment allows 160',
    ]);
    // The name as texts show it, transliterated: "Núñez" costs what "Nuñez" does.
    expect(
      validateTemplate('ready', 'en', en('x'.repeat(116)), {
        ...pharmacy,
        pharmacyName: 'Main Street Pharmací',
      }),
    ).toEqual(['settings.templates.ready.en is 161 characters when rendered; one SMS segment allows 160']);
  });

  it('checks only the form without the pharmacy, and reports every problem at once', () => {
    expect(validateTemplate('ready', 'en', en('x'.repeat(300)))).toEqual([]);
    expect(validateTemplate('ready', 'en', 'Hello {foo} {drug}')).toEqual([
      expect.stringContaining('{foo}'),
      expect.stringContaining('{drug}'),
      expect.stringContaining('must name the pharmacy'),
      expect.stringContaining('must end with the opt-out line'),
    ]);
    expect(validateTemplate('ready', 'en', en('Hi.'), { ...pharmacy, pharmacyName: ' ' })).toEqual([
      'settings.templates.ready.en cannot be checked: pharmacyName is empty',
    ]);
  });

  it('renders any template it accepted within one segment, ending with the opt-out line', () => {
    const piece = fc.oneof(
      fc.constantFrom('{pharmacy}', '{phone}', '{count}', '{date}', ' ', 'Ready', '!', 'é', 'á', '€', '\n'),
      fc.string({ unit: 'grapheme-ascii', maxLength: 20 }),
    );
    const keys = fc.constantFrom(...TEMPLATE_KEYS);
    fc.assert(
      fc.property(
        keys,
        fc.constantFrom(...LANGUAGES),
        fc.array(piece, { maxLength: 12 }),
        fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }),
        fc.integer({ min: 1, max: 99 }),
        fc
          .string({ unit: fc.constantFrom(...'aZ09 /.-'), minLength: 1, maxLength: 16 })
          .filter((d) => d.trim() !== ''),
        (key: TemplateKey, language, pieces, pharmacyName, count, returnToStockDate) => {
          const text = `{pharmacy}${key === 'unclaimed_pickup_3' ? '{date}' : ''}${pieces.join('')} ${OPT_OUT_LINE[language]}`;
          const context = { pharmacyName, callbackPhone: '+123456789012345' };
          try {
            smsPharmacyName(pharmacyName);
          } catch {
            return;
          }
          if (validateTemplate(key, language, text, context).length > 0) return;
          const kind = key.startsWith('unclaimed_pickup') ? 'unclaimed_pickup' : (key as NotificationKind);
          const step = key.startsWith('unclaimed_pickup') ? (Number(key.slice(-1)) as 1 | 2 | 3) : 1;
          const rendered = renderSms(
            kind,
            language,
            { ...context, count, step, returnToStockDate },
            { [key]: { [language]: text } },
          );
          expect(smsLength(rendered).fitsOneSegment).toBe(true);
          expect(rendered.endsWith(OPT_OUT_LINE[language])).toBe(true);
          // The template was used, not the built-in text.
          expect(rendered).not.toMatch(/\{(pharmacy|phone|count|date)\}/);
          expect(rendered).toBe(
            text
              .replace(/\{pharmacy\}/g, () => smsPharmacyName(pharmacyName))
              .replace(/\{phone\}/g, '+123456789012345')
              .replace(/\{count\}/g, String(count))
              .replace(/\{date\}/g, () => returnToStockDate.replace(/\s+/g, ' ').trim()),
          );
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('detailed messages (drugName)', () => {
  const drug = { ...base, drugName: 'Lisinopril 10 mg' };

  it.each<[NotificationKind, Language, 1 | 2 | 3, string]>([
    [
      'ready',
      'en',
      1,
      'Main Street Pharmacy: Your Lisinopril 10 mg is ready for pickup. Questions? Call +15551234567. Reply STOP to opt out.',
    ],
    [
      'ready',
      'es',
      1,
      'Main Street Pharmacy: Su receta de Lisinopril 10 mg ya se puede recoger. ¿Preguntas? Llame al +15551234567. Responda ALTO para cancelar.',
    ],
    [
      'refill_due',
      'en',
      1,
      'Main Street Pharmacy: Your Lisinopril 10 mg is due for a refill. Call +15551234567 to refill it. Reply STOP to opt out.',
    ],
    [
      'renewal_needed',
      'en',
      1,
      'Main Street Pharmacy: Your Lisinopril 10 mg has no refills left. Call +15551234567 and we will ask your prescriber to renew it. Reply STOP to opt out.',
    ],
    [
      'renewal_needed',
      'es',
      1,
      'Main Street Pharmacy: Su receta de Lisinopril 10 mg necesita renovarse. Llame al +15551234567. Responda ALTO para cancelar.',
    ],
    [
      'unclaimed_pickup',
      'en',
      2,
      'Main Street Pharmacy: Reminder: your Lisinopril 10 mg is still waiting for pickup. Questions? Call +15551234567. Reply STOP to opt out.',
    ],
    [
      'unclaimed_pickup',
      'en',
      3,
      'Main Street Pharmacy: Your Lisinopril 10 mg returns to stock on Nov 30. Please pick it up before then. Call +15551234567. Reply STOP to opt out.',
    ],
    [
      'adherence_gap',
      'es',
      1,
      'Main Street Pharmacy: Su receta de Lisinopril 10 mg tiene el resurtido atrasado. Llame al +15551234567 y con gusto le ayudamos. Responda ALTO para cancelar.',
    ],
  ])('%s in %s (step %i) names the drug', (kind, language, step, expected) => {
    expect(renderSms(kind, language, { ...drug, step })).toBe(expected);
  });

  it.each(MESSAGES)('%s in %s (step %i) names the drug for one prescription only', (kind, language, step) => {
    expect(renderSms(kind, language, { ...drug, step })).toContain('Lisinopril 10 mg');
    expect(renderSms(kind, language, { ...drug, step, count: 2 })).toBe(
      renderSms(kind, language, { ...base, step, count: 2 }),
    );
  });

  it('cuts a long drug name at a word boundary, never on a bare strength or a joining word', () => {
    const drugName = 'Amlodipine Besylate and Benazepril Hydrochloride 5 mg/20 mg Capsule';
    const texts = MESSAGES.map(([kind, language, step]) =>
      renderSms(kind, language, { ...base, drugName, step }),
    );
    for (const text of texts) {
      expect(smsLength(text).fitsOneSegment).toBe(true);
      expect(text).toMatch(/Amlodipine/);
      expect(text).not.toMatch(/ and (is|has|returns|looks|ya|tiene|sigue|necesita|regresa)\b/);
      expect(text).not.toMatch(/mg\/20 (?!mg)/);
    }
    expect(renderSms('renewal_needed', 'en', { ...base, drugName })).toBe(
      'Main Street Pharmacy: Your Amlodipine Besylate and Benazepril Hydrochloride 5 mg/20 mg Capsule needs renewal. Call +15551234567. Reply STOP to opt out.',
    );
  });

  it('drops a trailing full stop from the drug name', () => {
    expect(renderSms('ready', 'en', { ...base, drugName: 'Metformin 500 mg. ' })).toContain(
      'Your Metformin 500 mg is ready',
    );
  });

  it('transliterates the drug name to GSM-7, as for pharmacy names', () => {
    const text = renderSms('ready', 'es', { ...base, drugName: 'Amoxicilina “Genérica” 500 mg 💊' });
    expect(text).toContain('Amoxicilina "Genérica" 500 mg ya se puede');
    expect(isGsm7(text)).toBe(true);
  });

  it('falls back to the generic text when not even the first word of the drug fits, or nothing of it survives', () => {
    for (const drugName of ['Supercalifragilistic'.repeat(8), '💊💊', '  ', '500']) {
      expect(renderSms('ready', 'en', { ...base, drugName })).toBe(renderSms('ready', 'en', base));
    }
  });

  it('cuts a long pharmacy name before giving up on the drug', () => {
    const pharmacyName = 'Community Pharmacy & Wellness Center of Greater Springfield and Shelbyville';
    const text = renderSms('renewal_needed', 'es', {
      ...base,
      pharmacyName,
      drugName: 'Atorvastatin Calcium 40 mg Tablet',
    });
    expect(smsLength(text).fitsOneSegment).toBe(true);
    expect(text).toContain('Atorvastatin');
    expect(text.startsWith('Community Pharmacy & Wellness')).toBe(true);
  });

  it('always fits one segment and ends with the opt-out line, for any drug name, pharmacy name, kind and step', () => {
    const drugName = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 80 }),
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc
        .array(
          fc.oneof(
            fc.stringMatching(/^[A-Za-z]{1,25}$/),
            fc.stringMatching(/^\d{1,4}(\.\d)?$/),
            fc.constantFrom('mg', 'mL', 'and', '/', '(', ')', '€', 'á'),
          ),
          {
            maxLength: 30,
          },
        )
        .map((words) => words.join(' ')),
    );
    const pharmacyName = fc.oneof(
      fc.constant('Main Street Pharmacy'),
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 120 }),
      fc.string({ unit: 'grapheme-ascii', minLength: 60, maxLength: 200 }),
    );
    fc.assert(
      fc.property(
        drugName,
        pharmacyName,
        fc.constantFrom('+15551234567', '+123456789012345'),
        fc.constantFrom('Nov 30', '30 de noviembre', 'D'.repeat(16)),
        fc.constantFrom(...MESSAGES),
        (drug, name, callbackPhone, returnToStockDate, [kind, language, step]) => {
          try {
            smsPharmacyName(name);
          } catch {
            return;
          }
          const vars: TemplateVars = {
            pharmacyName: name,
            callbackPhone,
            returnToStockDate,
            step,
            drugName: drug,
          };
          const text = renderSms(kind, language, vars);
          expect(smsLength(text).fitsOneSegment).toBe(true);
          expect(text.endsWith(` ${OPT_OUT_LINE[language]}`)).toBe(true);
          const generic = renderSms(kind, language, { ...vars, drugName: undefined });
          if (text !== generic) {
            // Named: the drug's first word, as transliterated, is in the text.
            // (Trailing punctuation of a drug name is dropped in the text: "Your a/c is ready", not "a/c. is".)
            // (Control characters and every kind of space, U+2028 and U+FEFF included, read as spaces before
            // transliteration, as the renderer treats them: transliteration alone would drop some of them.)
            const first = toGsm7(
              [...drug]
                .map((c) => (hasControlCharacter(c) ? ' ' : c))
                .join('')
                .replace(/\s+/g, ' '),
            )
              .replace(/\s+/g, ' ')
              .trim()
              .split(' ')[0]
              .replace(/[.,;:!?]+$/, '');
            expect(text).toContain(first);
            expect(isGsm7(text) || !isGsm7(smsPharmacyName(name))).toBe(true);
          }
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('splits a drug name at any kind of space, even one transliteration would drop (U+2028, U+1680, U+FEFF)', () => {
    for (const space of ['\u2028', '\u2029', '\u1680', '\ufeff']) {
      const text = renderSms('ready', 'en', { ...drug, drugName: `Lisinopril${space}10 mg` });
      expect(text).toContain('Your Lisinopril 10 mg is ready');
    }
  });

  it('names the drug in a voice message too, briefly, under 60 words', () => {
    expect(renderVoice('ready', 'en', drug)).toBe(
      'Hello, this is an automated message from Main Street Pharmacy. Your Lisinopril 10 mg is ready for pickup. If you have questions, please call us at 5 5 5, 1 2 3, 4 5 6 7.',
    );
    expect(renderVoice('ready', 'en', { ...drug, count: 2 })).toBe(
      renderVoice('ready', 'en', { ...base, count: 2 }),
    );
    for (const [kind, language, step] of MESSAGES) {
      const text = renderVoice(kind, language, {
        pharmacyName: 'Smith and Sons Family Community Pharmacy of North Springfield Heights',
        callbackPhone: '+15551234567',
        returnToStockDate: '30 de noviembre',
        step,
        drugName: 'Amlodipine Besylate and Benazepril Hydrochloride 5 mg/20 mg Capsule Extended Release',
      });
      expect(text).toContain('Amlodipine Besylate and Benazepril');
      expect(text).not.toContain('Hydrochloride');
      expect(words(text)).toBeLessThan(60);
    }
  });
});
