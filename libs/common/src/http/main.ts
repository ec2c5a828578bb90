import type { Server } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import type { DynamicModule } from '@nestjs/common';
import { ConfigError, loadConfig, type AppConfig } from '../config/config';
import { startTelemetry, stopTelemetry } from '../telemetry/sdk';

export interface AppEntry {
  app: string;
  title: string;
  description: string;
  /**
   * Loads the app's root module. It is imported lazily (`await import('./x.module')`), after tracing has
   * started: instrumentation patches express, pg, ioredis and Nest only as they are first required.
   */
  module: (config: AppConfig) => Promise<DynamicModule>;
  port: (config: AppConfig) => number;
  largeBodyRoutes?: string[];
  /** How far the heap may grow past what survived the last full collection, in percent (see HEAP_GROWING_PERCENT). */
  heapGrowingPercent?: number;
}

/**
 * The one way an app process starts: validated config or a one-line refusal, then tracing, then the app.
 * Nothing here may import Nest, express or a database driver at the top: they must load after tracing.
 */
export async function bootstrap(entry: AppEntry): Promise<void> {
  let config: AppConfig;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${entry.app}: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  if (config.phi.devKeys) {
    process.stderr.write(
      `${entry.app}: WARNING development PHI keys in use; set PHI_ENCRYPTION_KEYS and PHI_INDEX_KEY\n`,
    );
  }
  limitHeapGrowth(entry.heapGrowingPercent ?? HEAP_GROWING_PERCENT);
  startTelemetry({ app: entry.app, otel: config.otel });
  const { createHttpApp } = await import('./bootstrap');
  const app = await createHttpApp(await entry.module(config), entry, stopTelemetry);
  await app.listen(entry.port(config));
  const server = app.getHttpServer() as Server;
  // Idle keep-alive connections outlive what clients and proxies in front usually keep theirs (60 s), so a
  // client never sends its request down a socket the server is just closing (it would see ECONNRESET).
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  server.headersTimeout = KEEP_ALIVE_MS + 1000;
}

/** How long an idle keep-alive connection stays open. */
export const KEEP_ALIVE_MS = 65_000;

/**
 * After each full collection V8 lets the heap grow to up to four times what survived before it collects
 * again, so a busy app holds mostly garbage: about 260 MB at 100 ready clicks a second against 140 MB after
 * boot. With growth capped at this percentage the same load peaks near 160–180 MB for the same CPU, but
 * garbage collection costs more where an app allocates in bursts, so an app may set its own
 * (`AppEntry.heapGrowingPercent`: the scheduler does; bench/README.md). Unlike a heap limit
 * (`--max-old-space-size`), nothing fails when the live data is large: the heap still grows as far as it must.
 * `node --heap-growing-percent=N` on the command line wins over both.
 */
const HEAP_GROWING_PERCENT = 20;

function limitHeapGrowth(percent: number): void {
  if (process.execArgv.some((arg) => /^--heap[-_]growing[-_]percent\b/.test(arg))) return;
  // Read by V8 at each collection, so it takes effect at run time.
  setFlagsFromString(`--heap-growing-percent=${percent}`);
}
