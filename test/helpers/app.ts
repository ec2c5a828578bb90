import type { DynamicModule, INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { DataSource } from 'typeorm';
import { KeyRing } from '../../libs/common/src/crypto/key-ring';
import type { AppConfig } from '../../libs/common/src/config/config';
import { configureHttpApp } from '../../libs/common/src/http/bootstrap';
import { createTestDatabase, type TestDatabase } from './database';
import { testConfig } from './config';
import { given } from './given';

export interface TestApp {
  app: INestApplication;
  http: ReturnType<INestApplication['getHttpServer']>;
  db: DataSource;
  keys: KeyRing;
  config: AppConfig;
  given: ReturnType<typeof given>;
  close(): Promise<void>;
}

/** Boots one app's real module in-process on a fresh database and queue prefix. */
export async function startTestApp(
  module: (config: AppConfig) => DynamicModule,
  options: {
    env?: Record<string, string>;
    largeBodyRoutes?: string[];
    database?: TestDatabase;
    listenPort?: number;
  } = {},
): Promise<TestApp> {
  const database = options.database ?? (await createTestDatabase());
  const config = testConfig(database.url, options.env);
  const moduleRef = await Test.createTestingModule({ imports: [module(config)] }).compile();
  const app = moduleRef.createNestApplication({ bodyParser: false, logger: false });
  configureHttpApp(app, { title: 'test', description: 'test', largeBodyRoutes: options.largeBodyRoutes });
  if (options.listenPort !== undefined) await app.listen(options.listenPort, '127.0.0.1');
  else await app.init();
  const db = app.get(DataSource);
  const keys = app.get(KeyRing);
  return {
    app,
    http: app.getHttpServer(),
    db,
    keys,
    config,
    given: given(db, keys),
    async close() {
      await app.close();
      if (!options.database) await database.drop();
    },
  };
}
