// node-postgres's own parameter serializer (exported as `pg/lib/utils`, untyped by @types/pg): what a query does
// to each parameter before sending it. array-literal.spec.ts holds arrayLiteral to its output.
declare module 'pg/lib/utils' {
  /** A parameter in the text form Postgres reads it in (arrays as `{…}` literals); null for null or undefined. */
  export function prepareValue(value: unknown): string | Buffer | null;
}
