import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js/max';

/** E.164 form of a phone number, or null when it is not a valid number. */
export function toE164(input: string, defaultRegion: CountryCode = 'US'): string | null {
  if (typeof input !== 'string' || input.length > 64) return null;
  const parsed = parsePhoneNumberFromString(input, defaultRegion);
  return parsed && parsed.isValid() ? parsed.number : null;
}
