import { HttpException } from '@nestjs/common';
import { PassThrough } from 'node:stream';
import type { Request } from 'express';
import { openCsvBody } from './csv-request';

/** Just what openCsvBody uses of a request: its headers and its body stream. */
function fakeRequest(headers: Record<string, string>): PassThrough & { headers: Record<string, string> } {
  return Object.assign(new PassThrough(), { headers });
}
const asRequest = (req: PassThrough) => req as unknown as Request;
const answer = (error: unknown) =>
  error instanceof HttpException ? [error.getStatus(), error.getResponse()] : error;

async function read(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += String(chunk);
  return text;
}

describe('openCsvBody', () => {
  it('passes a body within the cap through untouched', async () => {
    const req = fakeRequest({ 'content-type': 'text/csv; charset=UTF-8' });
    const body = openCsvBody(asRequest(req), 10);
    req.end('a,b\n1,2\n');
    expect(await read(body.stream)).toBe('a,b\n1,2\n');
  });

  it('fails the stream once more than the cap has streamed, and answers that as 413', async () => {
    const req = fakeRequest({ 'content-type': 'text/csv', 'transfer-encoding': 'chunked' });
    const body = openCsvBody(asRequest(req), 10);
    req.write('a,b\n1,2\n');
    req.write('3,4\n');
    const failure = await read(body.stream).then(
      () => null,
      (error: unknown) => error,
    );
    expect(answer(body.httpError(failure))).toEqual([
      413,
      { statusCode: 413, message: 'request body is too large' },
    ]);
    body.release();
    req.end('more the client still sends');
    expect(req.readableFlowing).toBe(true); // drained, so the answer can be read by the client
  });

  it('answers 413 before reading when the declared length is over the cap', () => {
    const req = fakeRequest({ 'content-type': 'text/csv', 'content-length': '11' });
    expect(() => openCsvBody(asRequest(req), 10)).toThrow(expect.objectContaining({ status: 413 }));
  });

  it('answers 415 to anything but uncompressed UTF-8 text/csv', () => {
    for (const type of ['application/json', 'text/plain', 'text/csvx', '', 'text/csv; charset=iso-8859-1']) {
      expect(() => openCsvBody(asRequest(fakeRequest({ 'content-type': type })), 10)).toThrow(
        expect.objectContaining({ status: 415 }),
      );
    }
    const gzipped = fakeRequest({ 'content-type': 'text/csv', 'content-encoding': 'gzip' });
    expect(() => openCsvBody(asRequest(gzipped), 10)).toThrow(expect.objectContaining({ status: 415 }));
  });
});
