import { checkHeader, extraLines, FILL_COLUMNS, toFillInput } from './fills-csv';

describe('fills CSV columns', () => {
  it('accepts the fill fields in any order, optional ones left out', () => {
    expect(checkHeader([...FILL_COLUMNS].reverse())).toEqual([]);
    expect(checkHeader(FILL_COLUMNS.filter((name) => !['ndc', 'maintenance'].includes(name)))).toEqual([]);
  });

  it('names unknown, duplicate, unnamed and missing columns', () => {
    const names = FILL_COLUMNS.filter((name) => name !== 'filledAt');
    expect(checkHeader([...names, 'ReadyAt', 'ndc', '', 'colour'])).toEqual([
      'unknown column "ReadyAt" (did you mean "readyAt"?)',
      'column "ndc" appears more than once',
      `column ${names.length + 3} of the header has no name`,
      'unknown column "colour"',
      'missing column "filledAt"',
    ]);
  });

  it('reads cells as the JSON types, leaving what does not read as such for validation to name', () => {
    const columns = [
      'externalId',
      'ndc',
      'quantity',
      'daysSupply',
      'fillNumber',
      'refillsRemaining',
      'maintenance',
    ];
    expect(toFillInput(columns, ['F-1', '', '2.5', '1e1', '0x1F', 'Infinity', 'Yes'])).toEqual({
      externalId: 'F-1',
      quantity: 2.5,
      daysSupply: 10,
      fillNumber: '0x1F',
      refillsRemaining: 'Infinity',
      maintenance: true,
    });
    for (const [cell, value] of [
      ['TRUE', true],
      ['no', false],
      ['1', true],
      ['0', false],
      ['maybe', 'maybe'],
      ['constructor', 'constructor'],
    ] as const) {
      expect(toFillInput(['maintenance'], [cell])).toEqual({ maintenance: value });
    }
    expect(toFillInput(['externalId', 'ndc'], ['F-2'])).toEqual({ externalId: 'F-2' });
  });

  it('counts the line breaks inside quoted fields, a CRLF once', () => {
    expect(extraLines(['a', 'b'])).toBe(0);
    expect(extraLines(['two\r\nlines', 'three\nmore\rlines', 'x'])).toBe(3);
  });
});
