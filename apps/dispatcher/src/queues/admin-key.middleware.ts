import { ForbiddenException, Injectable, UnauthorizedException, type NestMiddleware } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { NextFunction, Request, Response } from 'express';
import { DataSource } from 'typeorm';
import { findPrincipal } from '@rxnotify/common/auth/api-keys';

/**
 * The queue dashboard is an express app, outside Nest's guards: this is its door. An admin API key in
 * `Authorization: Bearer` and nothing else (no query-string key: URLs end up in logs and browser history).
 * The admin must reach every pharmacy: the queues hold every pharmacy's jobs, and retrying or removing one
 * acts on another pharmacy's notification.
 */
@Injectable()
export class AdminKeyMiddleware implements NestMiddleware {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  async use(req: Request, res: Response, next: NextFunction): Promise<void> {
    const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const principal = match ? await findPrincipal(this.db, match[1]) : null;
    if (!principal)
      return this.refuse(
        res,
        new UnauthorizedException('a valid API key is required (Authorization: Bearer <key>)'),
      );
    if (principal.role !== 'admin')
      return this.refuse(res, new ForbiddenException('the queue dashboard needs the admin role'));
    if (principal.pharmacyId !== null)
      return this.refuse(
        res,
        new ForbiddenException('the queue dashboard needs an admin key not limited to one pharmacy'),
      );
    next();
  }

  private refuse(res: Response, error: UnauthorizedException | ForbiddenException): void {
    res.status(error.getStatus()).json(error.getResponse());
  }
}
