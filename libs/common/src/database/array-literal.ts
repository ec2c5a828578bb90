/** What a flat array parameter may hold. */
export type ArrayElement = string | number | boolean | null | undefined;

/** A character that a quoted array element must escape with a backslash. */
const NEEDS_ESCAPE = /[\\"]/;

/**
 * A flat array as the text literal Postgres reads for an array parameter (`{"a","b",NULL}`): exactly what
 * node-postgres sends for it (array-literal.spec.ts compares the two), built with one join. node-postgres builds
 * each literal by appending element after element and runs two regular-expression replaces per element; for the
 * CSV import's 15 columns that was a third of everything the import allocated (about 3 KB a row), and the
 * garbage collector's work grows with it. Use it for large batches only; pg's own serializer is fine elsewhere.
 */
export function arrayLiteral(values: readonly ArrayElement[]): string {
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (value === null || value === undefined) {
      parts[i] = 'NULL';
      continue;
    }
    const text = typeof value === 'string' ? value : String(value);
    parts[i] = NEEDS_ESCAPE.test(text) ? `"${text.replace(/[\\"]/g, '\\$&')}"` : `"${text}"`;
  }
  return `{${parts.join(',')}}`;
}
