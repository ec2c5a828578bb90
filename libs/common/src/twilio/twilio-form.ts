import { BadRequestException } from '@nestjs/common';
import type { Request } from 'express';

/**
 * The named fields of a (signature-checked) Twilio form: each a single string. A required field that is absent,
 * or any field given twice or as anything but text, is a 400 naming it; an absent optional one is the empty
 * string. A request with no form at all reads as one with no fields.
 */
export function readTwilioForm<R extends string, O extends string>(
  request: Request,
  required: R[],
  optional: O[],
): Record<R | O, string> {
  const body: unknown = request.body;
  const form: Record<string, unknown> =
    typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  const fields: Record<string, string> = {};
  const missing: string[] = [];
  for (const name of [...required, ...optional]) {
    const value = Object.prototype.hasOwnProperty.call(form, name) ? form[name] : undefined;
    if (typeof value === 'string') fields[name] = value;
    else if ((required as string[]).includes(name)) missing.push(`${name} is required, once`);
    else if (value === undefined) fields[name] = '';
    else missing.push(`${name} must be given once`);
  }
  if (missing.length > 0) throw new BadRequestException(missing);
  return fields as Record<R | O, string>;
}
