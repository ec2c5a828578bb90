import fc from 'fast-check';
import { prepareValue } from 'pg/lib/utils';
import { arrayLiteral, type ArrayElement } from './array-literal';

describe('arrayLiteral', () => {
  it('writes what node-postgres would send for the same array', () => {
    const element: fc.Arbitrary<ArrayElement> = fc.oneof(
      fc.string(),
      fc.fullUnicodeString(),
      fc.constantFrom(
        '',
        '"',
        '\\',
        'a"b\\c',
        'NULL',
        '{1,2}',
        ' spaced ',
        'Amoxicillin/Clavulanate 875 mg, tablet',
      ),
      fc.integer(),
      fc.double({ noNaN: true }),
      fc.boolean(),
      fc.constant(null),
      fc.constant(undefined),
    );
    fc.assert(
      fc.property(fc.array(element, { maxLength: 40 }), (values) => {
        expect(arrayLiteral(values)).toBe(prepareValue(values));
      }),
      { numRuns: 3_000 },
    );
  });

  it('quotes every element, escapes quotes and backslashes, and writes NULL for a missing value', () => {
    expect(arrayLiteral(['a', 'say "hi"', 'C:\\rx', null, 30, true, undefined])).toBe(
      '{"a","say \\"hi\\"","C:\\\\rx",NULL,"30","true",NULL}',
    );
    expect(arrayLiteral([])).toBe('{}');
  });
});
