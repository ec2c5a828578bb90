import { toE164 } from '@rxnotify/common/phone/phone';
import { registerDecorator, ValidateIf, type ValidationOptions } from 'class-validator';

/** The canonical name of an IANA time zone ("america/new_york" → "America/New_York"), or null. */
export function canonicalTimeZone(value: unknown): string | null {
  if (typeof value !== 'string' || value.length === 0 || value.length > 64) return null;
  try {
    return new Intl.DateTimeFormat(undefined, { timeZone: value }).resolvedOptions().timeZone;
  } catch {
    return null;
  }
}

function custom(
  name: string,
  message: string,
  test: (value: unknown) => boolean,
  options?: ValidationOptions,
) {
  return (target: object, propertyName: string) =>
    registerDecorator({
      name,
      target: target.constructor,
      propertyName,
      options: { message, ...options },
      validator: { validate: test },
    });
}

export const IsTimeZone = (options?: ValidationOptions) =>
  custom(
    'isTimeZone',
    '$property must be an IANA time zone, such as America/New_York',
    (v) => canonicalTimeZone(v) !== null,
    options,
  );

export const IsPhone = (options?: ValidationOptions) =>
  custom(
    'isPhone',
    '$property must be a valid phone number',
    (v) => typeof v === 'string' && toE164(v) !== null,
    options,
  );

// Identifiers and names end up in text columns and in message templates: no control characters
// (Postgres text refuses NUL outright), no half of a surrogate pair (it would be stored as U+FFFD, so the text
// read back would not be the text sent), and something visible.
const NO_CONTROL_CHARACTERS = /^[^\p{Cc}\p{Cs}]*$/u;

/** A string of 1..max characters, not blank, without control characters. */
export const IsPlainText = (max: number, options?: ValidationOptions) =>
  custom(
    'isPlainText',
    `$property must be text of 1 to ${max} characters, not blank, without control characters`,
    (v) => typeof v === 'string' && v.length <= max && /\S/.test(v) && NO_CONTROL_CHARACTERS.test(v),
    options,
  );

/** May be left out, but not null: for fields of a partial update that cannot be cleared. */
export const IsOmittable = () => ValidateIf((_object: object, value: unknown) => value !== undefined);
