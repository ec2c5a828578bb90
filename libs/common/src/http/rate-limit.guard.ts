import { Inject, Injectable, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  InjectThrottlerOptions,
  InjectThrottlerStorage,
  normalizeIp,
  ThrottlerGuard,
  type ThrottlerModuleOptions,
  type ThrottlerRequest,
  type ThrottlerStorage,
} from '@nestjs/throttler';
import type { Request } from 'express';
import { Public } from '../auth/api-key.guard';
import { hashApiKey } from '../auth/api-keys';
import type { AppConfig } from '../config/config';
import { APP_CONFIG } from '../config/config.module';
import { SlidingWindowStorage } from './rate-limit.storage';

const MINUTE_MS = 60_000;
const PUBLIC_ROUTE = Public().KEY;

/**
 * One budget a minute per caller for the whole app (not one per route). Counters live in the process
 * ({@link SlidingWindowStorage}): with N replicas behind a balancer a caller gets up to N times the limit.
 */
export function rateLimitOptions(config: AppConfig): ThrottlerModuleOptions {
  return {
    throttlers: [{ name: 'default', ttl: MINUTE_MS, limit: config.rateLimit.perMinute }],
    generateKey: (_context: ExecutionContext, tracker: string, name: string) => `${name}:${tracker}`,
    errorMessage: 'too many requests: retry after the number of seconds in the Retry-After header',
    storage: new SlidingWindowStorage(),
  };
}

/**
 * Runs before the API-key check, so a caller over its budget costs no database lookup. An authenticated
 * route is counted per API key (the hash of the presented key, so a key is never held in memory) or, with
 * no key, per client IP; a public route (the Twilio webhooks, which carry no key) per source IP at the
 * webhook rate. /health and /metrics are exempt (@SkipThrottle).
 */
@Injectable()
export class RateLimitGuard extends ThrottlerGuard {
  constructor(
    @InjectThrottlerOptions() options: ThrottlerModuleOptions,
    @InjectThrottlerStorage() storage: ThrottlerStorage,
    reflector: Reflector,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    super(options, storage, reflector);
  }

  protected override handleRequest(props: ThrottlerRequest): Promise<boolean> {
    const { context } = props;
    const request = context.switchToHttp().getRequest<Request>();
    const publicRoute =
      this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, [context.getHandler(), context.getClass()]) ===
      true;
    // A public route ignores any Authorization header: otherwise inventing keys would mint fresh budgets.
    const tracker = publicRoute ? `webhook-ip:${clientIp(request)}` : callerOf(request);
    const limit = publicRoute ? this.config.rateLimit.webhooksPerMinute : this.config.rateLimit.perMinute;
    return super.handleRequest({ ...props, limit, getTracker: () => tracker });
  }
}

function callerOf(request: Request): string {
  const match = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '');
  return match ? `key:${hashApiKey(match[1])}` : `ip:${clientIp(request)}`;
}

/** The socket's peer (or, behind a proxy, what Express's `trust proxy` setting makes of X-Forwarded-For). */
function clientIp(request: Request): string {
  const ip = request.ip;
  if (!ip) return 'unknown';
  let normal = NORMALIZED.get(ip);
  if (normal === undefined) {
    if (NORMALIZED.size >= NORMALIZED_MAX) NORMALIZED.clear();
    normal = normalizeIp(ip);
    NORMALIZED.set(ip, normal);
  }
  return normal;
}

/**
 * Addresses already normalized. The throttler's `normalizeIp` parses an IPv6 address in full every time (a
 * server listening on `::` sees every IPv4 client as `::ffff:a.b.c.d`): 2% of the dispatcher's CPU under
 * Twilio's callbacks, which come from a handful of addresses. Bounded; emptied when full.
 */
const NORMALIZED = new Map<string, string>();
const NORMALIZED_MAX = 10_000;
