import {
  ArgumentsHost,
  Catch,
  HttpException,
  Inject,
  Injectable,
  Module,
  HttpStatus,
  Logger as NestLogger,
  ValidationPipe,
  type ExceptionFilter,
  type DynamicModule,
  type INestApplication,
  type OnApplicationShutdown,
  type Type,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import express, { type NextFunction, type Request, type Response } from 'express';
import helmet from 'helmet';
import { Logger } from 'nestjs-pino';
import { ConflictError, InvalidInputError, NotFoundError, RetryLaterError } from '../errors';
import { isDependencyUnavailable } from './dependency-errors';
import { Metrics } from '../metrics/metrics.service';
import { requestIdMiddleware } from './request-id';

export interface HttpAppOptions {
  title: string;
  description: string;
  /** Routes whose bodies may reach 32 MB (bulk ingest); every other route is capped at 1 MB. */
  largeBodyRoutes?: string[];
}

/** Maps domain errors (thrown by code the workers share) to HTTP, and never leaks an internal error's text. */
@Catch()
export class HttpErrorFilter implements ExceptionFilter {
  private readonly logger = new NestLogger('HttpErrorFilter');

  catch(error: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<Response>();
    const [status, body] = this.describe(error);
    // A RetryLaterError is an expected answer, logged by whoever raised it.
    if (status >= 500 && !(error instanceof RetryLaterError))
      this.logger.error(error instanceof Error ? `${error.name}: ${error.stack}` : 'non-error thrown');
    response.status(status).json(body);
  }

  private describe(error: unknown): [number, object] {
    if (error instanceof HttpException) {
      const answer = error.getResponse();
      return [
        error.getStatus(),
        typeof answer === 'string' ? { statusCode: error.getStatus(), message: answer } : answer,
      ];
    }
    if (error instanceof NotFoundError)
      return [404, { statusCode: 404, error: 'Not Found', message: error.message }];
    if (error instanceof InvalidInputError) {
      return [422, { statusCode: 422, error: 'Unprocessable Entity', message: error.problems }];
    }
    if (error instanceof ConflictError)
      return [409, { statusCode: 409, error: 'Conflict', message: error.message }];
    if (error instanceof RetryLaterError)
      return [503, { statusCode: 503, error: 'Service Unavailable', message: error.message }];
    const cause = (error as { driverError?: unknown })?.driverError ?? error;
    if (isDependencyUnavailable(cause) || isDependencyUnavailable(error)) {
      return [
        503,
        {
          statusCode: 503,
          error: 'Service Unavailable',
          message: 'a dependency is unavailable; retry later',
        },
      ];
    }
    return [500, { statusCode: 500, error: 'Internal Server Error', message: 'internal error' }];
  }
}

/** body-parser's own errors (malformed JSON, oversized body) as JSON answers rather than HTML pages. */
function bodyParserErrors(
  error: { status?: number; type?: string },
  _req: Request,
  res: Response,
  next: NextFunction,
) {
  if (!error || typeof error.status !== 'number') return next(error);
  const message =
    error.status === 413
      ? 'request body is too large'
      : error.type === 'entity.parse.failed'
        ? 'body is not valid JSON'
        : 'request body could not be read';
  res.status(error.status).json({ statusCode: error.status, message });
}

/**
 * How deep a JSON body may nest. The validation pipe walks a body recursively (class-transformer) and runs out of
 * stack near 5,000 levels, which a 30 KB body reaches; no request of ours nests beyond about ten (a FHIR bundle).
 */
export const MAX_BODY_DEPTH = 64;

/** A body nested deeper than {@link MAX_BODY_DEPTH} is refused before anything recursive touches it. */
function bodyDepthLimit(req: Request, res: Response, next: NextFunction) {
  if (nestedDeeperThan(req.body, MAX_BODY_DEPTH)) {
    res.status(400).json({
      statusCode: 400,
      message: `request body is nested more than ${MAX_BODY_DEPTH} levels deep`,
    });
    return;
  }
  next();
}

/** Whether objects and arrays in `value` nest more than `limit` levels; iterative, so any depth is safe. */
export function nestedDeeperThan(value: unknown, limit: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  const stack: [object, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (depth > limit) return true;
    for (const child of Object.values(node)) {
      if (child !== null && typeof child === 'object') stack.push([child as object, depth + 1]);
    }
  }
  return false;
}

export function configureHttpApp(app: INestApplication, options: HttpAppOptions): void {
  // First, so every answer (a refused body included) carries its request id and is counted.
  app.use(requestIdMiddleware);
  const metrics = optional(app, Metrics);
  if (metrics) app.use(metrics.httpMiddleware());
  app.use(helmet());
  const large = options.largeBodyRoutes ?? [];
  if (large.length > 0) {
    // Exactly these paths: `app.use(path)` would match every route below them (`/v1/fills/{id}/ready` too).
    const routes = new Set(large);
    const parseLarge = express.json({ limit: '32mb', type: ['application/json', 'application/fhir+json'] });
    app.use((req: Request, res: Response, next: NextFunction) =>
      routes.has(req.path.replace(/(.)\/+$/, '$1')) ? parseLarge(req, res, next) : next(),
    );
  }
  app.use(express.json({ limit: '1mb', type: ['application/json', 'application/fhir+json'] }));
  app.use(express.urlencoded({ extended: false, limit: '1mb' }));
  app.use(bodyParserErrors);
  app.use(bodyDepthLimit);
  app.useGlobalPipes(
    new ValidationPipe({
      whitelist: true,
      forbidNonWhitelisted: true,
      transform: true,
      errorHttpStatusCode: HttpStatus.UNPROCESSABLE_ENTITY,
    }),
  );
  app.useGlobalFilters(new HttpErrorFilter());
  app.enableShutdownHooks();

  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder().setTitle(options.title).setDescription(options.description).addBearerAuth().build(),
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json' });
}

/** Runs `work` when the app shuts down, after every module's own shutdown hooks. */
const ON_SHUTDOWN = Symbol('ON_SHUTDOWN');

@Injectable()
class ShutdownHook implements OnApplicationShutdown {
  constructor(@Inject(ON_SHUTDOWN) private readonly work: () => Promise<void>) {}
  onApplicationShutdown(): Promise<void> {
    return this.work();
  }
}

@Module({})
class ProcessModule {}

export async function createHttpApp(
  module: DynamicModule,
  options: HttpAppOptions,
  onShutdown: () => Promise<void> = async () => undefined,
): Promise<INestApplication> {
  const root: DynamicModule = {
    module: ProcessModule,
    imports: [module],
    providers: [{ provide: ON_SHUTDOWN, useValue: onShutdown }, ShutdownHook],
  };
  // forceCloseConnections: once the workers have drained, keep-alive clients must not hold the process open.
  const app = await NestFactory.create(root, {
    bufferLogs: true,
    bodyParser: false,
    forceCloseConnections: true,
  });
  app.useLogger(app.get(Logger));
  configureHttpApp(app, options);
  return app;
}

/** A provider the app may not have (a bare test module has no CoreModule). */
function optional<T>(app: INestApplication, token: Type<T>): T | undefined {
  try {
    return app.get(token, { strict: false });
  } catch {
    return undefined;
  }
}
