import type { CsvError } from 'csv-parse';
import type { FillDto } from './fill.dto';

type ColumnKind = 'text' | 'number' | 'boolean';
type RequiredKeys<T> = { [K in keyof T]-?: object extends Pick<T, K> ? never : K }[keyof T];

/**
 * The CSV columns are the JSON fill's fields. Typed against FillDto, so adding a field there without a column
 * here (or marking it required in one place only) does not compile.
 */
const COLUMNS: {
  [K in keyof FillDto]-?: { kind: ColumnKind; required: K extends RequiredKeys<FillDto> ? true : false };
} = {
  pharmacyId: { kind: 'text', required: true },
  externalId: { kind: 'text', required: true },
  patientExternalId: { kind: 'text', required: true },
  rxNumber: { kind: 'text', required: true },
  fillNumber: { kind: 'number', required: true },
  drugName: { kind: 'text', required: true },
  ndc: { kind: 'text', required: false },
  quantity: { kind: 'number', required: true },
  daysSupply: { kind: 'number', required: true },
  refillsRemaining: { kind: 'number', required: true },
  filledAt: { kind: 'text', required: true },
  status: { kind: 'text', required: true },
  readyAt: { kind: 'text', required: false },
  pickedUpAt: { kind: 'text', required: false },
  maintenance: { kind: 'boolean', required: false },
  therapeuticClass: { kind: 'text', required: false },
};

export const FILL_COLUMNS = Object.keys(COLUMNS) as (keyof FillDto)[];
const KNOWN = new Set<string>(FILL_COLUMNS);

/** Problems with a header row, each naming its column; empty when the header is usable. */
export function checkHeader(names: string[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  names.forEach((name, index) => {
    if (name === '') {
      problems.push(`column ${index + 1} of the header has no name`);
    } else if (!KNOWN.has(name)) {
      const meant = FILL_COLUMNS.find((known) => known.toLowerCase() === name.toLowerCase());
      problems.push(`unknown column ${JSON.stringify(name)}${meant ? ` (did you mean "${meant}"?)` : ''}`);
    } else if (seen.has(name)) {
      problems.push(`column ${JSON.stringify(name)} appears more than once`);
    }
    seen.add(name);
  });
  for (const name of FILL_COLUMNS) {
    if (COLUMNS[name].required && !seen.has(name)) problems.push(`missing column ${JSON.stringify(name)}`);
  }
  return problems;
}

/** Decimal notation only: "0x1F" or "Infinity" stay strings, so validation names the field. */
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const BOOLEANS = new Map<string, boolean>([
  ['true', true],
  ['yes', true],
  ['1', true],
  ['false', false],
  ['no', false],
  ['0', false],
]);

/**
 * A CSV record (its fields, in the header's order) as the JSON fill it stands for: an empty cell is an absent
 * field; numbers and booleans are converted when they read as such, and otherwise left as text for validation
 * to reject by name. `columns` must have passed checkHeader.
 */
export function toFillInput(columns: readonly string[], fields: readonly string[]): Record<string, unknown> {
  const fill: Record<string, unknown> = {};
  for (let i = 0; i < columns.length; i++) {
    const value = fields[i];
    if (value === undefined || value === '') continue;
    const name = columns[i];
    const kind = (COLUMNS as Record<string, { kind: ColumnKind }>)[name].kind;
    if (kind === 'number' && DECIMAL.test(value)) {
      const number = Number(value);
      fill[name] = Number.isFinite(number) ? number : value;
    } else if (kind === 'boolean') {
      fill[name] = BOOLEANS.get(value.toLowerCase()) ?? value;
    } else {
      fill[name] = value;
    }
  }
  return fill;
}

/** How many lines a record's fields span beyond its first: a quoted field may hold line breaks (CRLF counts once). */
export function extraLines(fields: readonly string[]): number {
  let count = 0;
  for (const field of fields) {
    if (field.includes('\n') || field.includes('\r')) count += field.match(/\r\n|\r|\n/g)?.length ?? 0;
  }
  return count;
}

/** Why csv-parse gave up on a record, in words a person fixing the file can act on. */
export function describeCsvError(
  error: CsvError,
  maxRecordChars: number,
  columns: readonly string[] | null,
): string {
  const index: unknown = error.column; // csv-parse gives the field's index when records are arrays
  const where =
    typeof index !== 'number'
      ? ''
      : columns?.[index]
        ? ` in column ${JSON.stringify(columns[index])}`
        : ` in field ${index + 1}`;
  const reason = (() => {
    switch (error.code) {
      case 'CSV_QUOTE_NOT_CLOSED':
        return `a quoted field${where} is never closed (unclosed quote)`;
      case 'CSV_INVALID_CLOSING_QUOTE':
      case 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE':
        return `a closing quote${where} is followed by other characters; a quote inside a quoted field must be doubled ("")`;
      case 'INVALID_OPENING_QUOTE':
        return `a quote appears inside an unquoted field${where}; quote the whole field and double the quote ("")`;
      case 'CSV_MAX_RECORD_SIZE':
        return `the record is longer than ${maxRecordChars} characters (an unclosed quote?)`;
      default:
        return `the record could not be parsed (${error.code})`;
    }
  })();
  return `malformed CSV: ${reason}; nothing after this point was read`;
}
