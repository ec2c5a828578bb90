/** Runs the Twilio sandbox as a standalone process (see ../README.md). */
import { startSandbox } from './sandbox';

async function main(): Promise<void> {
  const env = process.env;
  const port = Number(env.TWILIO_SANDBOX_PORT ?? 4010);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error('TWILIO_SANDBOX_PORT must be a port number');
  }
  const sandbox = await startSandbox({
    port,
    host: env.TWILIO_SANDBOX_HOST ?? '127.0.0.1',
    accountSid: env.TWILIO_ACCOUNT_SID ?? 'AC00000000000000000000000000000000',
    authToken: env.TWILIO_AUTH_TOKEN ?? 'sandbox-auth-token',
    consentApiUrl: env.CONSENT_API_PUBLIC_URL ?? `http://localhost:${env.CONSENT_API_PORT ?? 3000}`,
  });
  console.log(`twilio-sandbox listening on ${sandbox.url}`);

  const shutdown = (): void => {
    sandbox.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main().catch((err: unknown) => {
  console.error(`twilio-sandbox failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
