/**
 * Whether an error means a dependency (Postgres, Redis) is unreachable rather than a bug: such requests answer
 * 503 so that callers (Twilio first of all) retry them later.
 */
export function isDependencyUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    // Network failures, and Postgres's connection-exception (08xxx), admin-shutdown and cannot-connect classes.
    if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND'].includes(code))
      return true;
    // 53300: too many connections; 08xxx: connection exceptions; 57P0x: shutting down or cannot connect now.
    if (code.startsWith('08') || ['53300', '57P01', '57P02', '57P03'].includes(code)) return true;
  }
  // Driver not Connected: the data source is not connected yet (Postgres was away at boot).
  return /Driver not Connected|too many clients|Connection terminated|connection timeout|timeout exceeded when trying to connect|Connection is closed|MaxRetriesPerRequestError|Stream isn't writeable/i.test(
    error.message,
  );
}
