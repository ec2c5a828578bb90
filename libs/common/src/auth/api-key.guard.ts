import {
  CanActivate,
  createParamDecorator,
  ExecutionContext,
  ForbiddenException,
  Injectable,
  SetMetadata,
  UnauthorizedException,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { InjectDataSource } from '@nestjs/typeorm';
import type { Request } from 'express';
import { DataSource } from 'typeorm';
import { findPrincipal, type Principal, type Role } from './api-keys';

const ROLES_KEY = 'rxn:roles';
const PUBLIC_KEY = 'rxn:public';

/** The roles that may call a route; `admin` holds every role. */
export const Roles = (...roles: Role[]) => SetMetadata(ROLES_KEY, roles);
/** A route with no API key: health, metrics, docs, and Twilio webhooks (which check signatures instead). */
export const Public = () => SetMetadata(PUBLIC_KEY, true);

export interface AuthenticatedRequest extends Request {
  principal?: Principal;
}

export const CurrentPrincipal = createParamDecorator((_: unknown, ctx: ExecutionContext): Principal => {
  const principal = ctx.switchToHttp().getRequest<AuthenticatedRequest>().principal;
  if (!principal) throw new UnauthorizedException('API key required');
  return principal;
});

/** Fails closed: a route that declares neither @Public nor @Roles is refused. */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @InjectDataSource() private readonly db: DataSource,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_KEY, targets)) return true;
    const roles = this.reflector.getAllAndOverride<Role[] | undefined>(ROLES_KEY, targets);

    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    const principal = match ? await findPrincipal(this.db, match[1]) : null;
    if (!principal)
      throw new UnauthorizedException('a valid API key is required (Authorization: Bearer <key>)');
    request.principal = principal;

    if (!roles) throw new ForbiddenException('route is not open to any role');
    if (principal.role !== 'admin' && !roles.includes(principal.role)) {
      throw new ForbiddenException(`this route needs one of the roles: ${roles.join(', ')}`);
    }
    return true;
  }
}
