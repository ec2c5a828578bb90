import { createHash, type Hash } from 'node:crypto';
import { mkdir, open, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { DataSource, QueryRunner } from 'typeorm';
import type { KeyRing } from '../crypto/key-ring';
import {
  CHAIN_COLUMNS,
  OPTIONAL_CHAIN_COLUMNS,
  CHAINS,
  sealChain,
  verifyChain,
  type ChainBreak,
  type ChainName,
} from './audit-chain';

/** An inclusive range of instants, each as UTC ISO 8601 with microseconds (the chains' own timestamp form). */
export interface ExportRange {
  from: string;
  to: string;
}

export interface ExportedFile {
  sha256: string;
  rows: number;
  bytes: number;
  /** The first and last chain positions in the file; rows in a range need not be consecutive (see docs/security.md). */
  firstSeq: string | null;
  lastSeq: string | null;
}

export interface ExportManifest {
  format: 'rxnotify-audit-export/1';
  generatedAt: string;
  range: ExportRange;
  files: Record<string, ExportedFile>;
  /** Per chain: its head when the rows were read, and `audit verify` of the whole chain run after. */
  chains: Record<
    ChainName,
    {
      head: { seq: string; hash: string };
      verify: { intact: boolean; rows: number; head: string; broken: ChainBreak | null };
    }
  >;
  hashScheme: string;
  containsPhi: string;
}

export const EXPORT_FILES = {
  consent_events: 'consent_events.jsonl',
  message_attempts: 'message_attempts.jsonl',
  access_log: 'access_log.jsonl',
} as const satisfies Record<ChainName, string>;
export const MANIFEST_FILE = 'manifest.json';

/** Thrown for what the operator can fix (a bad date, a file already there); the message names the argument. */
export class ExportArgumentError extends Error {}

const DATE_OR_INSTANT =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/i;

/**
 * `YYYY-MM-DD` (a whole UTC day: `from` its first microsecond, `to` its last) or an ISO 8601 instant (no
 * offset means UTC). Impossible dates (2026-02-30, hour 24) are refused. `option` names the argument.
 */
export function parseExportBound(
  value: string | undefined,
  bound: 'from' | 'to',
  option = `--${bound}`,
): string {
  const problem = `${option} must be a date (YYYY-MM-DD) or an ISO 8601 date-time between the years 1 and 9999`;
  if (value === undefined || value.trim() === '') throw new ExportArgumentError(`${option} is required`);
  const m = DATE_OR_INSTANT.exec(value.trim());
  if (!m) throw new ExportArgumentError(problem);
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const dateOnly = m[4] === undefined;
  const [hour, minute, second] = dateOnly ? [0, 0, 0] : [Number(m[4]), Number(m[5]), Number(m[6] ?? 0)];
  const daysInMonth = [31, isLeap(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] ?? 0;
  if (
    year < 1 ||
    month < 1 ||
    month > 12 ||
    day < 1 ||
    day > daysInMonth ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  ) {
    throw new ExportArgumentError(problem);
  }
  if (dateOnly) return `${m[1]}-${m[2]}-${m[3]}T${bound === 'from' ? '00:00:00.000000' : '23:59:59.999999'}Z`;

  const offsetMinutes = parseOffset(m[8]);
  if (offsetMinutes === null) throw new ExportArgumentError(problem);
  const utc = new Date(0);
  utc.setUTCFullYear(year, month - 1, day);
  utc.setUTCHours(hour, minute - offsetMinutes, second, 0);
  if (utc.getUTCFullYear() < 1 || utc.getUTCFullYear() > 9999) throw new ExportArgumentError(problem);
  const micros = (m[7] ?? '').padEnd(6, '0').slice(0, 6);
  return `${utc.toISOString().slice(0, 19)}.${micros}Z`;
}

function isLeap(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

function parseOffset(zone: string | undefined): number | null {
  if (zone === undefined || zone.toUpperCase() === 'Z') return 0;
  const m = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone);
  if (!m) return null;
  const [hours, minutes] = [Number(m[2]), Number(m[3] ?? 0)];
  if (hours > 23 || minutes > 59) return null;
  return (m[1] === '-' ? -1 : 1) * (hours * 60 + minutes);
}

export function parseExportRange(from: string | undefined, to: string | undefined): ExportRange {
  const range = { from: parseExportBound(from, 'from'), to: parseExportBound(to, 'to') };
  // Both are fixed-width UTC strings, so text order is time order.
  if (range.from > range.to) throw new ExportArgumentError('--from must not be after --to');
  return range;
}

/** Each chained column as the text that was hashed (NULL: null), so a line can be re-hashed on its own. */
const chained = (chain: ChainName, alias: string) =>
  CHAIN_COLUMNS[chain]
    .map((c) => (c === 'at' ? `audit_ts(${alias}.at) AS at` : `${alias}.${c}::text AS ${c}`))
    .join(', ');

type Row = Record<string, string | null>;

interface ChainSource {
  chain: ChainName;
  /** Rows of the chain in the range with seq above $3, in seq order, at most $4. */
  sql: string;
  toLine(row: Row, keys: KeyRing): object;
}

const SOURCES: ChainSource[] = [
  {
    chain: 'consent_events',
    sql: `SELECT e.id::text AS id, ${chained('consent_events', 'e')}, e.evidence_mac, e.prev_hash, e.hash, v.evidence_enc
          FROM consent_events e LEFT JOIN consent_evidence v ON v.consent_event_id = e.id
          WHERE e.at BETWEEN $1::timestamptz AND $2::timestamptz AND e.seq > $3::bigint ORDER BY e.seq LIMIT $4`,
    toLine: (row, keys) => ({
      ...pick(row, 'consent_events'),
      evidence: keys.decryptOptional(row.evidence_enc),
    }),
  },
  {
    chain: 'message_attempts',
    // The message's recipient and delivery state, never its body.
    sql: `SELECT a.id::text AS id, ${chained('message_attempts', 'a')}, a.prev_hash, a.hash,
                 m.pharmacy_id::text AS m_pharmacy_id, m.patient_id::text AS m_patient_id, m.channel AS m_channel,
                 m.to_enc AS m_to_enc, m.from_number AS m_from, m.provider_sid AS m_provider_sid, m.status AS m_status,
                 m.error_code::text AS m_error_code
          FROM message_attempts a JOIN messages m ON m.id = a.message_id
          WHERE a.at BETWEEN $1::timestamptz AND $2::timestamptz AND a.seq > $3::bigint ORDER BY a.seq LIMIT $4`,
    toLine: (row, keys) => ({
      ...pick(row, 'message_attempts'),
      message: {
        pharmacyId: row.m_pharmacy_id,
        patientId: row.m_patient_id,
        channel: row.m_channel,
        to: keys.decryptOptional(row.m_to_enc),
        from: row.m_from,
        providerSid: row.m_provider_sid,
        status: row.m_status,
        errorCode: row.m_error_code === null ? null : Number(row.m_error_code),
      },
    }),
  },
  {
    chain: 'access_log',
    sql: `SELECT a.id::text AS id, ${chained('access_log', 'a')}, a.prev_hash, a.hash
          FROM access_log a
          WHERE a.at BETWEEN $1::timestamptz AND $2::timestamptz AND a.seq > $3::bigint ORDER BY a.seq LIMIT $4`,
    toLine: (row) => pick(row, 'access_log'),
  },
];

function pick(row: Row, chain: ChainName): Record<string, string | null> {
  const line: Record<string, string | null> = { id: row.id };
  for (const column of CHAIN_COLUMNS[chain]) line[column] = row[column];
  for (const column of OPTIONAL_CHAIN_COLUMNS[chain]) line[column] = row[column] ?? null;
  line.prev_hash = row.prev_hash;
  line.hash = row.hash;
  return line;
}

export interface ExportOptions {
  range: ExportRange;
  outDir: string;
  pageSize?: number;
  now?: () => Date;
}

/**
 * Writes the evidence for an auditor: one JSON Lines file per audit chain (every row in the range with its
 * seq, prev_hash and hash, consent evidence and message recipients decrypted, never a message body) and a
 * manifest of the files' SHA-256 and row counts, the chain heads and the result of verifying each chain.
 * Rows are read a page at a time inside one read-only REPEATABLE READ transaction, so the three files and
 * the heads are one consistent snapshot. Refuses to overwrite any file.
 */
export async function exportAudit(
  db: DataSource,
  keys: KeyRing,
  options: ExportOptions,
): Promise<ExportManifest> {
  const pageSize = options.pageSize ?? 1000;
  const now = options.now ?? (() => new Date());
  const outDir = options.outDir;
  await prepareDirectory(outDir);

  const files: Record<string, ExportedFile> = {};
  const heads = {} as Record<ChainName, { seq: string; hash: string }>;
  // Rows committed but not yet sealed get their chain columns first (waiting for an app's sealer if one is at
  // work), so the export has every row committed before it started.
  for (const chain of CHAINS) await sealChain(db, chain, true);
  const runner = db.createQueryRunner();
  await runner.connect();
  try {
    await runner.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const headRows = await runner.manager.query<{ chain: ChainName; seq: string; hash: string }[]>(
      `SELECT chain, seq::text, hash FROM audit_chain_heads`,
    );
    for (const head of headRows) heads[head.chain] = { seq: head.seq, hash: head.hash };
    for (const source of SOURCES) {
      files[EXPORT_FILES[source.chain]] = await writeChain(
        runner,
        keys,
        source,
        options.range,
        join(outDir, EXPORT_FILES[source.chain]),
        pageSize,
      );
    }
    await runner.query('COMMIT');
  } catch (error) {
    await runner.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    await runner.release();
  }

  const chains = {} as ExportManifest['chains'];
  for (const chain of CHAINS) {
    const report = await verifyChain(db, chain);
    chains[chain] = {
      head: heads[chain] ?? { seq: '0', hash: '' },
      verify: { intact: report.broken === null, rows: report.rows, head: report.head, broken: report.broken },
    };
  }
  const manifest: ExportManifest = {
    format: 'rxnotify-audit-export/1',
    generatedAt: now().toISOString(),
    range: options.range,
    files,
    chains,
    hashScheme:
      'hash = lowercase hex SHA-256 of prev_hash + "\\n" + the chained columns (consent_events: seq, patient_id, pharmacy_id, ' +
      'channel, status, source, actor, at; message_attempts: seq, message_id, notification_id, event, status, provider_sid, ' +
      'error_code, at; access_log: seq, key_id, role, pharmacy_id, patient_id, action, route, at) joined by "|", null as ' +
      'the empty string; each line carries these columns as the hashed text. See docs/security.md.',
    containsPhi:
      'consent evidence and message recipients (phone numbers) are in clear text: handle these files as PHI',
  };
  await writeNew(join(outDir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** Creates the directory if missing; refuses to start when any file the export writes is already there. */
async function prepareDirectory(outDir: string): Promise<void> {
  const existing = await stat(outDir).catch(() => null);
  if (existing && !existing.isDirectory()) throw new ExportArgumentError('--out must be a directory');
  await mkdir(outDir, { recursive: true });
  for (const name of [...Object.values(EXPORT_FILES), MANIFEST_FILE]) {
    if (await stat(join(outDir, name)).catch(() => null)) {
      throw new ExportArgumentError(`--out already holds ${name}; an export never overwrites a file`);
    }
  }
}

async function writeChain(
  runner: QueryRunner,
  keys: KeyRing,
  source: ChainSource,
  range: ExportRange,
  path: string,
  pageSize: number,
): Promise<ExportedFile> {
  const file = await createExclusive(path);
  const hash = createHash('sha256');
  const result: ExportedFile = { sha256: '', rows: 0, bytes: 0, firstSeq: null, lastSeq: null };
  try {
    let after = '0';
    for (;;) {
      const page = await runner.manager.query<Row[]>(source.sql, [range.from, range.to, after, pageSize]);
      if (page.length === 0) break;
      const chunk = page.map((row) => `${JSON.stringify(source.toLine(row, keys))}\n`).join('');
      await append(file, hash, chunk, result);
      result.rows += page.length;
      result.firstSeq ??= page[0].seq;
      after = page[page.length - 1].seq as string;
      result.lastSeq = after;
      if (page.length < pageSize) break;
    }
  } finally {
    await file.close();
  }
  result.sha256 = hash.digest('hex');
  return result;
}

async function append(file: FileHandle, hash: Hash, chunk: string, result: ExportedFile): Promise<void> {
  const bytes = Buffer.from(chunk, 'utf8');
  hash.update(bytes);
  await file.write(bytes);
  result.bytes += bytes.length;
}

/** Owner-only (the files hold PHI), and failing if the file exists (no overwrite, even in a race). */
function createExclusive(path: string): Promise<FileHandle> {
  return open(path, 'wx', 0o600).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EEXIST')
      throw new ExportArgumentError(`--out already holds ${path}; an export never overwrites a file`);
    throw error;
  });
}

async function writeNew(path: string, content: string): Promise<void> {
  const file = await createExclusive(path);
  try {
    await file.write(content);
  } finally {
    await file.close();
  }
}
