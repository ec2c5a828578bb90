export { AccessRoute, uuidPipe } from '@rxnotify/common/http/params';
import { BadRequestException, type PipeTransform } from '@nestjs/common';
import { InvalidInputError } from '@rxnotify/common/errors';
import { toE164 } from '@rxnotify/common/phone/phone';

export const CHANNELS = ['sms', 'voice'] as const;
export type Channel = (typeof CHANNELS)[number];

export class ParseChannelPipe implements PipeTransform<unknown, Channel> {
  transform(value: unknown): Channel {
    const channel = CHANNELS.find((c) => c === value);
    if (!channel) throw new BadRequestException([`channel must be one of ${CHANNELS.join(', ')}`]);
    return channel;
  }
}

/** E.164 form of a phone the DTO already validated; throws a field-named 422 should it not be one. */
export function requireE164(value: string, field: string): string {
  const e164 = toE164(value);
  if (!e164) throw new InvalidInputError([`${field} must be a valid phone number`]);
  return e164;
}
