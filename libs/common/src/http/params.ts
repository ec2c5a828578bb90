import {
  BadRequestException,
  createParamDecorator,
  ParseUUIDPipe,
  type ExecutionContext,
} from '@nestjs/common';
import type { Request } from 'express';

/** A UUID path parameter; a malformed one answers 400 naming the parameter, never reaches Postgres. */
export function uuidPipe(name: string): ParseUUIDPipe {
  return new ParseUUIDPipe({ exceptionFactory: () => new BadRequestException([`${name} must be a UUID`]) });
}

/** "METHOD /path" of the request, for the access log; the query string is left out. */
export const AccessRoute = createParamDecorator((_: unknown, ctx: ExecutionContext): string => {
  const request = ctx.switchToHttp().getRequest<Request>();
  return `${request.method} ${request.originalUrl.split('?')[0]}`;
});
