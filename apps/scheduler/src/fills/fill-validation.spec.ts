import { plainToInstance } from 'class-transformer';
import { isDateString, validateSync } from 'class-validator';
import fc from 'fast-check';
import { FILL_STATUSES, FillDto } from './fill.dto';
import { checkFill, isCanonicalTimestamp, passesFillRules } from './fill-validation';

const byClassValidator = (input: object) =>
  validateSync(plainToInstance(FillDto, input), { whitelist: true, forbidNonWhitelisted: true }).length === 0;

/** A valid fill, and a clock a month after it. */
const now = new Date('2025-06-01T00:00:00Z');
const base = {
  pharmacyId: '3f1c9a52-5d0e-4b8e-9a57-2f0c5a1e7d10',
  externalId: 'F-1',
  patientExternalId: 'P-1',
  rxNumber: 'RX1',
  fillNumber: 0,
  drugName: 'Lisinopril',
  quantity: 30,
  daysSupply: 30,
  refillsRemaining: 1,
  filledAt: '2025-05-01T00:00:00Z',
  status: 'ready',
};

/** Values near each rule's edges, of the right type and of the wrong ones. */
const anything = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.boolean(),
  fc.constantFrom(
    0,
    1,
    -1,
    0.5,
    1000,
    1001,
    365,
    366,
    99,
    100,
    1_000_000,
    1_000_001,
    Number.NaN,
    Infinity,
    1e-9,
  ),
  fc.integer({ min: -5, max: 2000 }),
  fc.double(),
  fc.string({ maxLength: 5 }),
  fc.constantFrom(
    '',
    'x'.repeat(20),
    'x'.repeat(21),
    'x'.repeat(200),
    'x'.repeat(201),
    '😀'.repeat(150),
    'ready',
    'READY',
    'true',
    '30',
  ),
  fc.constantFrom(
    '2025-01-15T14:00:00Z',
    '2025-01-15',
    '2025-02-30T00:00:00Z',
    '2025-01-15T14:00:00.123+02:00',
    '20250115T140000Z',
    'yesterday',
  ),
  fc.uuid(),
  fc.constantFrom(
    '3F1C9A52-5D0E-4B8E-9A57-2F0C5A1E7D10',
    '00000000-0000-0000-0000-000000000000',
    '3f1c9a52-5d0e-4b8e-9a57-2f0c5a1e7d1',
  ),
  fc.constant({}),
  fc.constant([]),
);
const valid: Record<keyof FillDto, fc.Arbitrary<unknown>> = {
  pharmacyId: fc.uuid(),
  externalId: fc.string({ minLength: 1, maxLength: 200 }),
  patientExternalId: fc.string({ minLength: 1, maxLength: 30 }),
  rxNumber: fc.string({ minLength: 1, maxLength: 30 }),
  fillNumber: fc.integer({ min: 0, max: 1000 }),
  drugName: fc.string({ minLength: 1, maxLength: 30 }),
  ndc: fc.option(fc.string({ minLength: 1, maxLength: 20 }), { nil: undefined }),
  quantity: fc.oneof(
    fc.integer({ min: 1, max: 1_000_000 }),
    fc.double({ min: 0.001, max: 1_000_000, noNaN: true }),
  ),
  daysSupply: fc.integer({ min: 1, max: 365 }),
  refillsRemaining: fc.integer({ min: 0, max: 99 }),
  filledAt: fc.date({ min: new Date('2000-01-01'), max: new Date('2030-01-01') }).map((d) => d.toISOString()),
  status: fc.constantFrom(...FILL_STATUSES),
  readyAt: fc.option(
    fc.date({ min: new Date('2000-01-01'), max: new Date('2030-01-01') }).map((d) => d.toISOString()),
    { nil: undefined },
  ),
  pickedUpAt: fc.constant(undefined),
  maintenance: fc.option(fc.boolean(), { nil: undefined }),
  therapeuticClass: fc.option(fc.string({ minLength: 1, maxLength: 30 }), { nil: undefined }),
};
/** A mostly valid fill with a few fields replaced by anything, sometimes with a stray field. */
const fill = fc
  .tuple(
    fc.record(valid),
    fc.dictionary(fc.constantFrom(...(Object.keys(valid) as (keyof FillDto)[])), anything, { maxKeys: 3 }),
    fc.boolean(),
  )
  .map(([base, broken, stray]) => {
    const out: Record<string, unknown> = { ...base, ...broken };
    for (const key of Object.keys(out)) if (out[key] === undefined && !(key in broken)) delete out[key];
    if (stray) out.colour = 'red';
    return out;
  });

describe('fill validation fast path', () => {
  it('says valid exactly when class-validator does', () => {
    fc.assert(
      fc.property(fill, (input) => {
        expect(passesFillRules(input)).toBe(byClassValidator(input));
      }),
      { numRuns: 2_000 },
    );
  });

  it('leaves the wording of errors to class-validator', () => {
    expect(checkFill(base, now)).toEqual({ ok: true, fill: base });
    expect(checkFill({ ...base, daysSupply: '30' }, now)).toEqual({
      ok: false,
      externalId: 'F-1',
      errors: [
        'daysSupply must not be greater than 365',
        'daysSupply must not be less than 1',
        'daysSupply must be an integer number',
      ],
    });
    expect(checkFill({ ...base, colour: 'red' }, now)).toEqual({
      ok: false,
      externalId: 'F-1',
      errors: [expect.stringContaining('colour should not exist')],
    });
    expect(checkFill({ ...base, filledAt: '2025-07-01T00:00:00Z' }, now)).toEqual({
      ok: false,
      externalId: 'F-1',
      errors: ['filledAt must not be in the future'],
    });
  });
});

describe('timestamp fast path', () => {
  const strict = (value: string) => isDateString(value, { strict: true });
  /** Strings shaped like a timestamp, each part drawn near and past its range, with stray separators. */
  const pad = (n: number, width: number) => String(n).padStart(width, '0');
  const timestampLike = fc
    .tuple(
      fc.integer({ min: 0, max: 9999 }),
      fc.integer({ min: 0, max: 13 }),
      fc.integer({ min: 0, max: 32 }),
      fc.constantFrom('T', 't', ' ', ''),
      fc.integer({ min: 0, max: 25 }),
      fc.integer({ min: 0, max: 61 }),
      fc.integer({ min: 0, max: 61 }),
      fc.constantFrom('', '.5', '.123', '.123456789', ',5', '.'),
      fc.constantFrom('Z', 'z', '', '+00:00', '-05:00', '+23:59', '+24:00', '-0500', '+05'),
    )
    .map(
      ([year, month, day, t, hour, minute, second, fraction, zone]) =>
        `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}${t}${pad(hour, 2)}:${pad(minute, 2)}:${pad(second, 2)}${fraction}${zone}`,
    );

  it('says valid only where @IsDateString({ strict: true }) does', () => {
    fc.assert(
      fc.property(fc.oneof(timestampLike, fc.string()), (value) => {
        if (isCanonicalTimestamp(value)) expect(strict(value)).toBe(true);
      }),
      { numRuns: 20_000 },
    );
  });

  it('knows the calendar, and leaves every other form to the library', () => {
    expect(isCanonicalTimestamp('2024-02-29T10:00:00Z')).toBe(true);
    expect(isCanonicalTimestamp('2000-02-29T10:00:00.250-05:00')).toBe(true);
    expect(isCanonicalTimestamp('2023-02-29T10:00:00Z')).toBe(false);
    expect(strict('2023-02-29T10:00:00Z')).toBe(false);
    expect(isCanonicalTimestamp('1900-02-29T10:00:00Z')).toBe(false);
    expect(isCanonicalTimestamp('2025-04-31T10:00:00Z')).toBe(false);
    expect(isCanonicalTimestamp('2025-12-31T23:59:59Z')).toBe(true);
    expect(isCanonicalTimestamp('0999-01-01T00:00:00Z')).toBe(false);
    // Forms the library takes and the fast path does not: they still pass, through the library.
    for (const other of ['2025-05-01', '2025-05-01T10:00Z', '2025-05-01T10:00:00']) {
      expect(isCanonicalTimestamp(other)).toBe(false);
      expect(strict(other)).toBe(true);
    }
  });
});

describe('text and timestamps Postgres must read as given', () => {
  const TIMESTAMP_ERROR = 'must be an ISO 8601 date and time with a time zone, such as 2025-05-01T14:30:00Z';

  it('refuses by name an ISO 8601 form Postgres would read as another instant or not at all', () => {
    // Each passes @IsDateString({ strict: true }); Postgres fails the whole statement on the first three and
    // reads 10:00.5 as ten minutes past midnight.
    for (const odd of [
      '2025-05-01T10:00:00,5Z',
      '2025-W18-4',
      '2025-05',
      '2025-05-01T10:00.5Z',
      '2025-05-01T10',
    ]) {
      expect(isDateString(odd, { strict: true })).toBe(true);
      expect(checkFill({ ...base, readyAt: odd }, now)).toEqual({
        ok: false,
        externalId: 'F-1',
        errors: [`readyAt ${TIMESTAMP_ERROR}`],
      });
    }
  });

  it('keeps the usual form as sent, and writes the other readable ones as the same instant', () => {
    const usual = checkFill(base, now);
    expect(usual.ok && usual.fill).toBe(base);
    expect(checkFill({ ...base, filledAt: '2025-05-01' }, now)).toMatchObject({
      ok: true,
      fill: { filledAt: '2025-05-01T00:00:00.000Z' },
    });
    expect(checkFill({ ...base, filledAt: '2025-05-01 10:00:00-05:00' }, now)).toMatchObject({
      ok: true,
      fill: { filledAt: '2025-05-01T15:00:00.000Z' },
    });
  });

  it('refuses half of a surrogate pair by name, and takes a whole one', () => {
    expect(checkFill({ ...base, externalId: 'F-\ud800' }, now)).toEqual({
      ok: false,
      externalId: null,
      errors: ['externalId must be well-formed Unicode text (it holds half of a surrogate pair)'],
    });
    expect(checkFill({ ...base, drugName: '\udc00Lisinopril' }, now)).toMatchObject({ ok: false });
    expect(checkFill({ ...base, drugName: 'Lisinopril \u{1F48A}' }, now)).toMatchObject({ ok: true });
  });
});
