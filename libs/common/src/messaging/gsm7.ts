/**
 * SMS segment arithmetic (3GPP TS 23.038). A message is sent in the GSM 7-bit default alphabet when
 * every character belongs to it, else in UCS-2 (UTF-16), where one stray character cuts a single
 * segment from 160 characters to 70.
 */

/** The GSM 03.38 default alphabet in code order, without 0x1B (the escape to the extension table). */
const GSM7_BASIC =
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?' +
  '¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';

/** The extension table: each is sent as ESC plus one septet, so it costs two. */
const GSM7_EXTENSION = '\f^{}\\[~]|€';

const BASIC = new Set(GSM7_BASIC);
const EXTENSION = new Set(GSM7_EXTENSION);

export const GSM7_SEGMENT_LIMIT = 160;
export const UCS2_SEGMENT_LIMIT = 70;

export type SmsEncoding = 'GSM-7' | 'UCS-2';

export interface SmsLength {
  encoding: SmsEncoding;
  /** Septets for GSM-7 (extension characters count 2), UTF-16 code units for UCS-2. */
  units: number;
  /** The single-segment limit for the encoding. */
  limit: number;
  fitsOneSegment: boolean;
}

/** Septets one character costs in GSM-7, or undefined when it is not in the alphabet. */
function septets(char: string): 1 | 2 | undefined {
  if (BASIC.has(char)) return 1;
  if (EXTENSION.has(char)) return 2;
  return undefined;
}

export function isGsm7(text: string): boolean {
  for (const char of text) {
    if (septets(char) === undefined) return false;
  }
  return true;
}

export function smsLength(text: string): SmsLength {
  let units = 0;
  for (const char of text) {
    const cost = septets(char);
    if (cost === undefined) {
      return {
        encoding: 'UCS-2',
        units: text.length,
        limit: UCS2_SEGMENT_LIMIT,
        fitsOneSegment: text.length <= UCS2_SEGMENT_LIMIT,
      };
    }
    units += cost;
  }
  return { encoding: 'GSM-7', units, limit: GSM7_SEGMENT_LIMIT, fitsOneSegment: units <= GSM7_SEGMENT_LIMIT };
}

/** Look-alikes that decomposition does not reduce to a GSM-7 character. */
const REPLACEMENTS = new Map<string, string>([
  ['\u2018', "'"],
  ['\u2019', "'"],
  ['\u201A', "'"],
  ['\u201B', "'"],
  ['\u2032', "'"],
  ['\u02BC', "'"],
  ['`', "'"],
  ['\u00B4', "'"],
  ['\u201C', '"'],
  ['\u201D', '"'],
  ['\u201E', '"'],
  ['\u201F', '"'],
  ['\u2033', '"'],
  ['\u00AB', '"'],
  ['\u00BB', '"'],
  ['\u2010', '-'],
  ['\u2011', '-'],
  ['\u2012', '-'],
  ['\u2013', '-'],
  ['\u2014', '-'],
  ['\u2015', '-'],
  ['\u2212', '-'],
  ['\u2022', '-'],
  ['\u00B7', '-'],
  ['\t', ' '],
  ['\u00AE', '(R)'],
  ['\u00A9', '(C)'],
  ['\u0153', 'oe'],
  ['\u0152', 'OE'],
  ['\u0111', 'd'],
  ['\u0110', 'D'],
  ['\u00F0', 'd'],
  ['\u00D0', 'D'],
  ['\u0142', 'l'],
  ['\u0141', 'L'],
  ['\u0131', 'i'],
  ['\u00FE', 'th'],
  ['\u00DE', 'Th'],
]);

/**
 * Transliterates text into the GSM-7 alphabet: characters already in it are kept (é, ñ, ü stay),
 * typographic quotes and dashes become their ASCII forms, other accented letters lose their accents
 * (á → a), and whatever has no GSM-7 form (emoji, CJK) is dropped.
 */
export function toGsm7(text: string): string {
  let out = '';
  for (const char of text.normalize('NFC')) {
    if (septets(char) !== undefined) {
      out += char;
      continue;
    }
    const replacement = REPLACEMENTS.get(char);
    if (replacement !== undefined) {
      out += replacement;
      continue;
    }
    for (const part of char.normalize('NFKD')) {
      if (septets(part) !== undefined) out += part;
      else out += REPLACEMENTS.get(part) ?? '';
    }
  }
  return out;
}
