import { randomBytes } from 'node:crypto';
import { loadConfig, type AppConfig } from '../../libs/common/src/config/config';

export const TEST_PHI_KEYS = `test1:${Buffer.alloc(32, 7).toString('base64')}`;
export const TEST_INDEX_KEY = Buffer.alloc(32, 8).toString('base64');

/** Configuration for an in-process app under test: its own database and queue prefix, test keys, quiet logs. */
export function testConfig(databaseUrl: string, overrides: Record<string, string> = {}): AppConfig {
  return loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: databaseUrl,
    QUEUE_PREFIX: `rxt-${randomBytes(4).toString('hex')}`,
    PHI_ENCRYPTION_KEYS: TEST_PHI_KEYS,
    PHI_INDEX_KEY: TEST_INDEX_KEY,
    LOG_LEVEL: 'silent',
    ...overrides,
  });
}
