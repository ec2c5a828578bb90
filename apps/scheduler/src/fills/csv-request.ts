import {
  BadRequestException,
  HttpException,
  HttpStatus,
  UnsupportedMediaTypeException,
} from '@nestjs/common';
import { finished, Transform, type Readable, type TransformCallback } from 'node:stream';
import type { Request } from 'express';

/** The contract's cap for bulk ingest routes, as express.json counts '32mb'. */
export const CSV_IMPORT_MAX_BYTES = 32 * 1024 * 1024;
/** After answering early, what is still arriving is read and dropped, up to this much; then the connection is cut. */
const DISCARD_MAX_BYTES = 64 * 1024 * 1024;
const READABLE_CHARSETS = new Set(['utf-8', 'utf8', 'us-ascii']);

class BodyTooLargeError extends Error {}
class BodyUnreadableError extends Error {}

const bodyTooLarge = () =>
  new HttpException(
    { statusCode: HttpStatus.PAYLOAD_TOO_LARGE, message: 'request body is too large' },
    HttpStatus.PAYLOAD_TOO_LARGE,
  );

/** Passes bytes through until more than `maxBytes` have gone by, then fails. */
class ByteCap extends Transform {
  private seen = 0;

  constructor(private readonly maxBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.maxBytes) callback(new BodyTooLargeError());
    else callback(null, chunk);
  }
}

export interface CsvBody {
  /** The raw body, failing once it passes the cap or when the client goes away. */
  stream: Readable;
  /** Maps a failure of `stream` to its HTTP answer; anything else is returned as is. */
  httpError(error: unknown): unknown;
  /** Stops reading for the import and drops whatever the client still sends, so the answer can go out now. */
  release(): void;
}

/**
 * The unread body of a `text/csv` request (express.json leaves it alone), capped at `maxBytes` as it streams.
 * Not text/csv → 415; a declared length over the cap → 413 before anything is read.
 */
export function openCsvBody(req: Request, maxBytes: number = CSV_IMPORT_MAX_BYTES): CsvBody {
  const contentType = req.headers['content-type'] ?? '';
  const [mediaType, ...parameters] = contentType.split(';').map((part) => part.trim().toLowerCase());
  if (mediaType !== 'text/csv') {
    throw new UnsupportedMediaTypeException(
      `this route takes a CSV file: send it with Content-Type: text/csv${contentType ? ` (got ${JSON.stringify(contentType)})` : ''}`,
    );
  }
  const charset = parameters
    .find((p) => p.startsWith('charset='))
    ?.slice('charset='.length)
    .replace(/"/g, '');
  if (charset !== undefined && !READABLE_CHARSETS.has(charset)) {
    throw new UnsupportedMediaTypeException(`the CSV must be UTF-8 (got charset=${charset})`);
  }
  const encoding = req.headers['content-encoding']?.trim().toLowerCase();
  if (encoding && encoding !== 'identity') {
    throw new UnsupportedMediaTypeException(`send the CSV uncompressed (got Content-Encoding: ${encoding})`);
  }
  if (Number(req.headers['content-length']) > maxBytes) {
    discard(req);
    throw bodyTooLarge();
  }

  const capped = new ByteCap(maxBytes);
  req.pipe(capped);
  const stopWatching = finished(req, { writable: false }, (error) => {
    if (error) capped.destroy(new BodyUnreadableError());
  });
  return {
    stream: capped,
    httpError(error) {
      if (error instanceof BodyTooLargeError) return bodyTooLarge();
      return error instanceof BodyUnreadableError
        ? new BadRequestException('request body could not be read')
        : error;
    },
    release() {
      stopWatching();
      req.unpipe(capped);
      if (!req.readableEnded && !req.destroyed) discard(req);
    },
  };
}

function discard(req: Request): void {
  let dropped = 0;
  req.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > DISCARD_MAX_BYTES) req.destroy();
  });
  req.resume();
}
