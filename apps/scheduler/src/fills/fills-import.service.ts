import { Injectable } from '@nestjs/common';
import { pipeline, type Readable } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { CsvError, parse } from 'csv-parse';
import type { Principal } from '@rxnotify/common/auth/api-keys';
import { Clock } from '@rxnotify/common/clock/clock';
import { InvalidInputError } from '@rxnotify/common/errors';
import type { FillOutcome } from './fill.dto';
import { FillBatch, type SealedFillBatch } from './fill-batch';
import { checkHeader, describeCsvError, extraLines, toFillInput } from './fills-csv';
import { FillsService } from './fills.service';

/**
 * Records per chunk, each chunk one transaction. Each chunk costs seven statements whatever its size, so larger
 * chunks import faster (100,000 rows: 21,600-22,000 rows/s at 2,000, 23,900 at 5,000, 25,000 at 10,000); at most
 * three chunks are held at once, and a chunk locks no more fills than half of the JSON route's largest batch.
 */
export const IMPORT_CHUNK_ROWS = 5_000;
/** A fill's cells add up to under 2,000 characters; a far longer record is an unclosed quote swallowing the file. */
const MAX_RECORD_CHARS = 64 * 1024;

export type ImportOutcome = FillOutcome & { line: number };

/** A record's fields, or (in its place) the parse error that ends the file. */
type ParsedItem = string[] | { malformed: CsvError };
/** A chunk's batch, validated and laid out as it was read, and the line of each of its records. */
interface Chunk {
  batch: SealedFillBatch;
  lines: number[];
}

/**
 * Records parsed between two turns of the event loop. csv-parse hands over a whole network read's records at
 * once, and the loop below would parse them all before Postgres's answer to the chunk being written is read:
 * the writer's statements would wait on the parser, and reading and writing would take turns instead of overlapping.
 */
const RECORDS_PER_TURN = 100;
/** Chunks handed to the writer and not yet written, at most: the reader runs this far ahead. */
const CHUNKS_AHEAD = 2;

type Failed = { failure: unknown } | null;

/**
 * Applies chunks in file order, each in its own transaction through FillsService.write. The reader may hand
 * over up to CHUNKS_AHEAD chunks before the first of them is written, so reading and parsing go on while
 * Postgres works; then it waits, so backpressure reaches the request from there. After a chunk fails, the
 * chunks behind it are not applied, and the failure is rethrown to the reader.
 */
class ChunkWriter {
  readonly results: ImportOutcome[] = [];
  private readonly loggedPatients = new Set<string>();
  private tail: Promise<Failed> = Promise.resolve(null);
  private readonly ahead: Promise<Failed>[] = [];
  private cancelled = false;

  constructor(
    private readonly fills: FillsService,
    private readonly principal: Principal,
    private readonly route: string,
  ) {}

  /** Queues this chunk behind the others, waiting first when CHUNKS_AHEAD are already queued. */
  async write(chunk: Chunk): Promise<void> {
    if (this.ahead.length >= CHUNKS_AHEAD) {
      const outcome = await this.ahead.shift();
      if (outcome) throw outcome.failure;
    }
    // Settled into a value at once: a failure is rethrown by write or flush, never left unhandled meanwhile.
    const stage = this.tail.then(
      (prior): Promise<Failed> | Failed =>
        prior ??
        (this.cancelled ? { failure: new Error('import cancelled') } : null) ??
        this.apply(chunk).then(
          () => null,
          (failure: unknown) => ({ failure }),
        ),
    );
    this.tail = stage;
    this.ahead.push(stage);
  }

  /** Waits for every queued chunk, rethrowing the first failure. */
  async flush(): Promise<void> {
    const outcome = await this.tail;
    this.ahead.length = 0;
    if (outcome) throw outcome.failure;
  }

  /** The source failed: chunks queued and not yet started are dropped (the one being written finishes). */
  cancel(): void {
    this.cancelled = true;
  }

  /** Waits for the queued chunks to commit or fail, so that no answer goes out while one is undecided. */
  async settle(): Promise<void> {
    await this.tail;
  }

  private async apply({ batch, lines }: Chunk): Promise<void> {
    const outcomes = await this.fills.write(this.principal, batch, this.route, {
      loggedPatients: this.loggedPatients,
    });
    outcomes.forEach((outcome, k) => this.results.push(Object.assign(outcome, { line: lines[k] })));
  }
}

/** CSV ingestion of fills: streamed, applied chunk by chunk through the same write as the JSON route. */
@Injectable()
export class FillsImportService {
  constructor(
    private readonly fills: FillsService,
    private readonly clock: Clock,
  ) {}

  /**
   * Streams `source` through csv-parse and applies the records in chunks of IMPORT_CHUNK_ROWS, each chunk in its
   * own transaction. A chunk once applied stays applied: when the source fails part way (over the size cap,
   * client gone) the error is rethrown and earlier chunks are not undone; the chunk still being read is dropped.
   * A malformed record ends the import: it is reported as rejected after the records before it. Records are
   * validated as they are read, while the chunks before them are being written.
   */
  async importCsv(principal: Principal, source: Readable, route: string): Promise<ImportOutcome[]> {
    // Records come as arrays and the header is checked here, and line numbers are counted here from the fields
    // (csv-parse's `info.lines` counts a quoted CRLF as two lines); blank lines are records of one empty field,
    // skipped below once counted. Arrays without `info` also halve the garbage per record.
    const parser = parse({
      bom: true,
      trim: true,
      skip_empty_lines: false,
      relax_column_count: true,
      max_record_size: MAX_RECORD_CHARS,
      // A parse error would destroy the stream and drop the records parsed before it in the same chunk of input.
      // Skipped instead, it is pushed in order among the records, and the loop below stops there.
      skip_records_with_error: true,
    });
    parser.on('skip', (error: CsvError) => parser.push({ malformed: error }));
    // The source's errors (over the size cap, client gone) reach the loop through the parser, which pipeline destroys.
    pipeline(source, parser, () => undefined);

    const writer = new ChunkWriter(this.fills, principal, route);
    let header: string[] | null = null;
    let nextLine = 1;
    let records = 0;
    let batch = new FillBatch(principal, () => this.clock.now());
    let lines: number[] = [];
    try {
      for await (const item of parser as AsyncIterable<ParsedItem>) {
        if (!Array.isArray(item)) {
          const reason = describeCsvError(item.malformed, MAX_RECORD_CHARS, header);
          if (header === null) throw new InvalidInputError([`the header row is ${reason}`]);
          batch.addRejected({ externalId: null, outcome: 'rejected', errors: [reason] });
          lines.push(nextLine);
          break;
        }
        const line = nextLine;
        nextLine += 1 + extraLines(item);
        // Counted by record: a quoted line break would make line numbers skip the multiples.
        if (++records % RECORDS_PER_TURN === 0) await nextTurn();
        if (item.length === 1 && item[0] === '') continue;
        if (header === null) {
          const problems = checkHeader(item);
          if (problems.length > 0) throw new InvalidInputError(problems);
          header = item;
          continue;
        }
        if (item.length !== header.length) {
          const externalId = item[header.indexOf('externalId')] || null;
          const problem = `record has ${item.length} field${item.length === 1 ? '' : 's'} but the header has ${header.length} columns`;
          batch.addRejected({ externalId, outcome: 'rejected', errors: [problem] });
        } else {
          batch.add(toFillInput(header, item));
        }
        lines.push(line);
        if (batch.size >= IMPORT_CHUNK_ROWS) {
          await writer.write({ batch: batch.seal(), lines });
          batch = new FillBatch(principal, () => this.clock.now());
          lines = [];
        }
      }
      if (header === null)
        throw new InvalidInputError(['the CSV is empty: its first line must be a header naming the columns']);
      await writer.write({ batch: batch.seal(), lines });
      await writer.flush();
      return writer.results;
    } catch (error) {
      writer.cancel();
      throw error;
    } finally {
      await writer.settle();
    }
  }
}
