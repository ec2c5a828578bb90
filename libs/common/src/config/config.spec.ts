import { ConfigError, loadConfig, SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN } from './config';

const key = (byte: number) => Buffer.alloc(32, byte).toString('base64');

describe('loadConfig', () => {
  it('gives the documented defaults in development, on the sandbox with dev keys', () => {
    const config = loadConfig({});
    expect(config.database.url).toBe('postgres://postgres@127.0.0.1:5432/rxnotify');
    expect(config.queue.prefix).toBe('rxn');
    expect(config.ports).toEqual({ consentApi: 3000, scheduler: 3001, dispatcher: 3002 });
    expect(config.publicUrls.dispatcher).toBe('http://localhost:3002');
    expect(config.twilio).toMatchObject({
      sandbox: true,
      accountSid: SANDBOX_ACCOUNT_SID,
      apiBaseUrl: 'http://127.0.0.1:4010',
    });
    expect(config.phi.devKeys).toBe(true);
    expect(config.scanIntervalSeconds).toBe(300);
  });

  it('uses real Twilio when credentials are given', () => {
    const config = loadConfig({ TWILIO_ACCOUNT_SID: `AC${'a'.repeat(32)}`, TWILIO_AUTH_TOKEN: 'tok' });
    expect(config.twilio).toMatchObject({ sandbox: false, apiBaseUrl: 'https://api.twilio.com' });
  });

  it('parses a key ring, first key encrypting', () => {
    const config = loadConfig({ PHI_ENCRYPTION_KEYS: `k2:${key(2)}, k1:${key(1)}`, PHI_INDEX_KEY: key(3) });
    expect(config.phi.keys.map((k) => k.id)).toEqual(['k2', 'k1']);
    expect(config.phi.devKeys).toBe(false);
  });

  it('refuses to boot outside development without PHI keys', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/PHI_ENCRYPTION_KEYS.*PHI_INDEX_KEY/);
  });

  it('refuses to boot in production on the public sandbox credentials unless TWILIO_SANDBOX=1 says it is a demo', () => {
    const keys = { NODE_ENV: 'production', PHI_ENCRYPTION_KEYS: `k1:${key(1)}`, PHI_INDEX_KEY: key(2) };
    const explicitSandbox = {
      TWILIO_ACCOUNT_SID: SANDBOX_ACCOUNT_SID,
      TWILIO_AUTH_TOKEN: SANDBOX_AUTH_TOKEN,
    };
    for (const env of [keys, { ...keys, ...explicitSandbox }, { ...keys, TWILIO_SANDBOX: '0' }]) {
      let error: unknown;
      try {
        loadConfig(env);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      const message = (error as ConfigError).message;
      expect(message).toContain('TWILIO_AUTH_TOKEN');
      expect(message).toContain('TWILIO_SANDBOX=1');
      expect(message).not.toContain(SANDBOX_AUTH_TOKEN);
    }
    expect(loadConfig({ ...keys, TWILIO_SANDBOX: '1' }).twilio.sandbox).toBe(true);
    expect(loadConfig({ ...keys, ...explicitSandbox, TWILIO_SANDBOX: '1' }).twilio.authToken).toBe(
      SANDBOX_AUTH_TOKEN,
    );
    const real = { TWILIO_ACCOUNT_SID: `AC${'a'.repeat(32)}`, TWILIO_AUTH_TOKEN: 'a-real-secret' };
    expect(loadConfig({ ...keys, ...real }).twilio.sandbox).toBe(false);
    // Development and tests run on the sandbox without saying so.
    expect(loadConfig({ ...keys, NODE_ENV: 'test' }).twilio.sandbox).toBe(true);
    expect(loadConfig({}).twilio.sandbox).toBe(true);
  });

  it('names every bad variable and never echoes a value', () => {
    const secret = 'hunter2-very-secret';
    let error: unknown;
    try {
      loadConfig({
        NODE_ENV: secret,
        REDIS_URL: `http://${secret}`,
        PHI_ENCRYPTION_KEYS: `k1:${secret}`,
        SCHEDULER_PORT: secret,
        TWILIO_AUTH_TOKEN: secret,
      });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    for (const name of ['NODE_ENV', 'REDIS_URL', 'PHI_ENCRYPTION_KEYS', 'SCHEDULER_PORT']) {
      expect(message).toContain(name);
    }
    expect(message).not.toContain(secret);
    expect(message.split('\n')).toHaveLength(1);
  });

  it('takes a Redis Cluster only with a hash-tagged queue prefix', () => {
    expect(loadConfig({}).redis).toEqual({ url: 'redis://127.0.0.1:6379', cluster: false });
    expect(loadConfig({ REDIS_CLUSTER: '1', QUEUE_PREFIX: '{rxn}' }).redis.cluster).toBe(true);
    expect(() => loadConfig({ REDIS_CLUSTER: '1' })).toThrow(
      /QUEUE_PREFIX must hold a hash tag such as \{rxn\} when REDIS_CLUSTER=1/,
    );
  });

  it('refuses half a set of Twilio credentials', () => {
    expect(() => loadConfig({ TWILIO_AUTH_TOKEN: 'x' })).toThrow(/TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN/);
  });
});
