import { plainToInstance } from 'class-transformer';
import {
  isBoolean,
  isDateString,
  isIn,
  isInt,
  isNumber,
  isPositive,
  isString,
  isUUID,
  length,
  max,
  min,
  validateSync,
  type ValidationError,
} from 'class-validator';
import { hasLoneSurrogate, LONE_SURROGATE_PROBLEM } from '@rxnotify/common/unicode';
import { FILL_STATUSES, FillDto } from './fill.dto';

/** How far ahead of our clock a PhMS clock may run before a fill date counts as "in the future". */
const CLOCK_SKEW_MS = 5 * 60 * 1000;

const TIMESTAMP_FIELDS = ['filledAt', 'readyAt', 'pickedUpAt'] as const;
/**
 * A date and a time (seconds and a fraction optional) with `Z` or an offset. `@IsDateString` also takes forms
 * that Postgres reads as another instant or not at all (`10:00:00,5`, `10:00.5`, `2025-W01-1`, a year alone).
 */
const ZONED_DATE_TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:\d{2})$/;
const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;

/**
 * A timestamp that passed `@IsDateString` but is not in the usual form, as the instant both Postgres and
 * JavaScript read (`toISOString`); a date alone is midnight UTC, as in the FHIR route. Null for a form that
 * would not be read as the same instant by both.
 */
function storableTimestamp(value: string): string | null {
  if (DATE_ONLY.test(value)) return `${value}T00:00:00.000Z`;
  if (!ZONED_DATE_TIME.test(value)) return null;
  const ms = Date.parse(value.replace(' ', 'T').replace(/z$/, 'Z'));
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

export type FillCheck =
  { ok: true; fill: FillDto } | { ok: false; externalId: string | null; errors: string[] };

/** Validates one input fill; each problem names its field. */
export function checkFill(input: unknown, now: Date): FillCheck {
  const externalId =
    input && typeof input === 'object' && typeof (input as { externalId?: unknown }).externalId === 'string'
      ? (input as { externalId: string }).externalId
      : null;
  if (!input || typeof input !== 'object' || Array.isArray(input)) {
    return { ok: false, externalId, errors: ['fill must be an object'] };
  }
  // Text Postgres cannot store as given (a NUL character; a lone surrogate, which it would store as U+FFFD so the
  // fill could not be found again by its id): refused here, naming the field, rather than failing the batch.
  const unstorable = unstorableText(input as Record<string, unknown>);
  if (unstorable.length > 0) {
    return {
      ok: false,
      externalId: externalId !== null && isUnstorable(externalId) ? null : externalId,
      errors: unstorable,
    };
  }
  let fill: FillDto;
  let errors: string[];
  if (passesFillRules(input)) {
    fill = input;
    errors = [];
  } else {
    fill = plainToInstance(FillDto, input);
    errors = flatten(validateSync(fill, { whitelist: true, forbidNonWhitelisted: true }));
  }
  if (errors.length === 0) {
    for (const field of TIMESTAMP_FIELDS) {
      const value = fill[field];
      if (value === undefined || value === null || isCanonicalTimestamp(value)) continue;
      const stored = storableTimestamp(value);
      if (stored === null)
        errors.push(
          `${field} must be an ISO 8601 date and time with a time zone, such as 2025-05-01T14:30:00Z`,
        );
      else fill = { ...fill, [field]: stored };
    }
  }
  if (errors.length === 0) {
    const latest = now.getTime() + CLOCK_SKEW_MS;
    if (Date.parse(fill.filledAt) > latest) errors.push('filledAt must not be in the future');
    if (fill.readyAt && Date.parse(fill.readyAt) > latest) errors.push('readyAt must not be in the future');
    if (fill.pickedUpAt && Date.parse(fill.pickedUpAt) > latest)
      errors.push('pickedUpAt must not be in the future');
    // A fill in any other state has not been picked up: a time for it would contradict the status (and a ready
    // fill's readyAt, defaulted to now, would then come after it).
    if (fill.pickedUpAt && fill.status !== 'picked_up')
      errors.push(`pickedUpAt is only allowed when status is picked_up (status is ${fill.status})`);
    else if (fill.readyAt && fill.pickedUpAt && Date.parse(fill.pickedUpAt) < Date.parse(fill.readyAt)) {
      errors.push('pickedUpAt must not be before readyAt');
    }
  }
  return errors.length > 0 ? { ok: false, externalId, errors } : { ok: true, fill };
}

const isUnstorable = (text: string) => text.includes('\u0000') || hasLoneSurrogate(text);

/** What is wrong with each text field Postgres cannot store as given; one test a field in the usual case of none. */
function unstorableText(input: Record<string, unknown>): string[] {
  let found: string[] | undefined;
  for (const key in input) {
    if (!Object.prototype.hasOwnProperty.call(input, key)) continue;
    const value = input[key];
    if (typeof value !== 'string' || !isUnstorable(value)) continue;
    (found ??= []).push(
      value.includes('\u0000')
        ? `${key} must not contain a NUL character`
        : `${key} ${LONE_SURROGATE_PROBLEM}`,
    );
  }
  return found ?? NONE;
}
const NONE: string[] = [];

/**
 * FillDto's decorators as plain checks, built from the same class-validator functions the decorators call.
 * class-validator costs about 60 µs a fill (most of a bulk import's time); this is a few µs. It only ever says
 * "valid" where class-validator would (fill-validation.spec.ts checks that); anything else goes through
 * class-validator, which words the errors. Keyed by FillDto's fields, so a new field does not compile until added.
 */
const optional = (rule: (value: unknown) => boolean) => (value: unknown) =>
  value === undefined || value === null || rule(value);
const text = (minLength: number, maxLength: number) => (value: unknown) =>
  isString(value) && length(value, minLength, maxLength);
const integer = (least: number, most: number) => (value: unknown) =>
  isInt(value) && min(value, least) && max(value, most);
const timestamp = (value: unknown) => isCanonicalTimestamp(value) || isDateString(value, { strict: true });
const FILL_RULES: { [K in keyof FillDto]-?: (value: unknown) => boolean } = {
  pharmacyId: (value) => isUUID(value),
  externalId: text(1, 200),
  patientExternalId: text(1, 200),
  rxNumber: text(1, 100),
  fillNumber: integer(0, 1000),
  drugName: text(1, 300),
  ndc: optional(text(1, 20)),
  quantity: (value) =>
    isNumber(value, { allowNaN: false, allowInfinity: false }) && isPositive(value) && max(value, 1_000_000),
  daysSupply: integer(1, 365),
  refillsRemaining: integer(0, 99),
  filledAt: timestamp,
  status: (value) => isIn(value, FILL_STATUSES),
  readyAt: optional(timestamp),
  pickedUpAt: optional(timestamp),
  maintenance: optional(isBoolean),
  therapeuticClass: optional(text(1, 200)),
};
const RULES = new Map<string, (value: unknown) => boolean>(Object.entries(FILL_RULES));
const RULE_KEYS = [...RULES.keys()];
const RULE_CHECKS = [...RULES.values()];

/** True only when every FillDto rule holds and no unknown field is present. Allocates nothing (a hot loop). */
export function passesFillRules(input: object): input is FillDto {
  const fields = input as Record<string, unknown>;
  for (const key in fields) {
    if (Object.prototype.hasOwnProperty.call(fields, key) && !RULES.has(key)) return false;
  }
  for (let i = 0; i < RULE_KEYS.length; i++) if (!RULE_CHECKS[i](fields[RULE_KEYS[i]])) return false;
  return true;
}

/**
 * The form PhMS exports write, `2025-05-01T14:30:00Z` (a fraction and an offset allowed), with each part in its
 * range, the day in its month and the year from 1000 (the library reads earlier years in other ways). Every such
 * string passes `@IsDateString({ strict: true })`, which the fast path falls back to for anything else
 * (fill-validation.spec.ts checks this). The library's check builds a Date and several arrays for every
 * timestamp, three a fill; this reads the digits in place.
 */
const CANONICAL_TIMESTAMP =
  /^[1-9]\d{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$/;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

export function isCanonicalTimestamp(value: unknown): boolean {
  if (typeof value !== 'string' || !CANONICAL_TIMESTAMP.test(value)) return false;
  const digit = (at: number) => value.charCodeAt(at) - 48;
  const year = digit(0) * 1000 + digit(1) * 100 + digit(2) * 10 + digit(3);
  const month = digit(5) * 10 + digit(6);
  const day = digit(8) * 10 + digit(9);
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return day <= (month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1]);
}

function flatten(errors: ValidationError[], prefix = ''): string[] {
  return errors.flatMap((error) => {
    const path = prefix ? `${prefix}.${error.property}` : error.property;
    const own = Object.values(error.constraints ?? {}).map((message) =>
      message.startsWith(error.property) ? `${prefix ? `${prefix}.` : ''}${message}` : `${path} ${message}`,
    );
    return [...own, ...flatten(error.children ?? [], path)];
  });
}
