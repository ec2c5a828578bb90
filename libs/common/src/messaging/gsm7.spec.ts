import fc from 'fast-check';
import { isGsm7, smsLength, toGsm7 } from './gsm7';

/** GSM 03.38 default alphabet, 0x00–0x7F, with 0x1B (ESC) left out. */
const BASIC_TABLE = [
  '@£$¥èéùìòÇ\nØø\rÅå',
  'Δ_ΦΓΛΩΠΨΣΘΞ',
  'ÆæßÉ',
  ' !"#¤%&\'()*+,-./',
  '0123456789:;<=>?',
  '¡ABCDEFGHIJKLMNO',
  'PQRSTUVWXYZÄÖÑÜ§',
  '¿abcdefghijklmno',
  'pqrstuvwxyzäöñüà',
].join('');
const EXTENSION_TABLE = '\f^{}\\[~]|€';

describe('isGsm7', () => {
  it('holds the 127 characters of the basic table and the 10 of the extension table', () => {
    expect(Array.from(BASIC_TABLE)).toHaveLength(127);
    expect(isGsm7(BASIC_TABLE)).toBe(true);
    expect(isGsm7(EXTENSION_TABLE)).toBe(true);
  });

  it.each([
    ['', true],
    ['Reply STOP to opt out.', true],
    ['Responda ALTO para cancelar.', true],
    ['médico, niño, pingüino, à', true],
    ['¿Preguntas? ¡Llame!', true],
    ['€5 [promo] {x} ~ ^ | \\', true],
    ['á', false],
    ['í', false],
    ['ó', false],
    ['ú', false],
    ['ç', false],
    ['\u2019', false],
    ['\u2026', false],
    ['😀', false],
    ['薬局', false],
    ['`', false],
    ['\t', false],
  ])('%j → %s', (text, expected) => {
    expect(isGsm7(text)).toBe(expected);
  });
});

describe('smsLength', () => {
  it.each([
    ['', 'GSM-7', 0, 160, true],
    ['a'.repeat(160), 'GSM-7', 160, 160, true],
    ['a'.repeat(161), 'GSM-7', 161, 160, false],
    ['€'.repeat(80), 'GSM-7', 160, 160, true],
    ['a'.repeat(159) + '€', 'GSM-7', 161, 160, false],
    ['{}', 'GSM-7', 4, 160, true],
    ['á'.repeat(70), 'UCS-2', 70, 70, true],
    ['á'.repeat(71), 'UCS-2', 71, 70, false],
    ['a'.repeat(69) + 'á', 'UCS-2', 70, 70, true],
    ['😀', 'UCS-2', 2, 70, true],
    ['😀'.repeat(35), 'UCS-2', 70, 70, true],
    ['😀'.repeat(35) + 'a', 'UCS-2', 71, 70, false],
    ['€á', 'UCS-2', 2, 70, true],
  ] as const)('%j → %s, %i units of %i, fits %s', (text, encoding, units, limit, fits) => {
    expect(smsLength(text)).toEqual({ encoding, units, limit, fitsOneSegment: fits });
  });

  it('counts septets for GSM-7 text and UTF-16 code units otherwise', () => {
    const gsmChar = fc.constantFrom(...Array.from(BASIC_TABLE + EXTENSION_TABLE));
    fc.assert(
      fc.property(fc.string({ unit: gsmChar, maxLength: 200 }), (text) => {
        const extension = Array.from(text).filter((c) => EXTENSION_TABLE.includes(c)).length;
        const length = smsLength(text);
        expect(length.encoding).toBe('GSM-7');
        expect(length.units).toBe(Array.from(text).length + extension);
        expect(length.fitsOneSegment).toBe(length.units <= 160);
      }),
    );
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 100 }), (text) => {
        const length = smsLength(text);
        if (isGsm7(text)) expect(length.encoding).toBe('GSM-7');
        else expect(length).toMatchObject({ encoding: 'UCS-2', units: text.length, limit: 70 });
      }),
    );
  });
});

describe('toGsm7', () => {
  it.each([
    ['Farmacia Núñez', 'Farmacia Nuñez'],
    ['Pharmacie Côté', 'Pharmacie Coté'],
    ['Smith\u2019s \u201CBest\u201D Rx \u2013 Main St\u2026', 'Smith\'s "Best" Rx - Main St...'],
    ['François Œuvre', 'Francois OEuvre'],
    ['Łódź Apteka', 'Lodz Apteka'],
    ['ＡＢＣ Pharmacy', 'ABC Pharmacy'],
    ['Kam Man 金門藥房', 'Kam Man '],
    ['💊 Pill Box 💊', ' Pill Box '],
    ['e\u0301', 'é'],
    ['Corner\u00A0Drug', 'Corner Drug'],
    ['€ [x]', '€ [x]'],
  ])('%j → %j', (text, expected) => {
    expect(toGsm7(text)).toBe(expected);
  });

  it('always returns GSM-7 text and leaves GSM-7 text unchanged', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 100 }), (text) => {
        const out = toGsm7(text);
        expect(isGsm7(out)).toBe(true);
        if (isGsm7(text)) expect(out).toBe(text);
      }),
    );
  });
});
