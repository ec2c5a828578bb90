import { classifyProviderFailure, describeProviderCode } from './sms-provider';

describe('describeProviderCode (failure reasons staff read in GET /v1/follow-ups)', () => {
  it.each([
    [21211, undefined, 'the number is not a valid phone number'],
    [21217, undefined, 'the number does not appear to be a valid phone number'],
    [30003, 'undelivered', 'the phone is switched off or out of reach'],
    [30005, 'undelivered', 'the number does not exist or is no longer in service'],
    [30006, 'undelivered', 'the number is a landline or unreachable carrier'],
    [30007, 'undelivered', 'the carrier filtered the message as spam'],
    [null, 'busy', 'the line was busy'],
    [null, 'no-answer', 'nobody answered the call'],
    [null, 'canceled', 'the call was canceled before it connected'],
    [null, 'failed', 'the call or text could not be placed'],
    [30010, 'undelivered', 'the carrier could not deliver the text (error 30010)'],
    [20003, undefined, 'the provider refused the request (error 20003)'],
    [null, undefined, 'the provider refused the request'],
  ] as const)('%s / %s → %s', (code, status, reason) => {
    expect(describeProviderCode(code, status)).toBe(reason);
  });

  it('never answers with a bare code or "unknown"', () => {
    for (const status of ['busy', 'no-answer', 'canceled', 'failed', 'undelivered', undefined]) {
      for (const code of [null, 21211, 30003, 30005, 30007, 21217, 12345]) {
        expect(describeProviderCode(code, status)).not.toMatch(/^provider error|unknown$/);
      }
    }
  });
});

describe('classifyProviderFailure', () => {
  it.each([
    [429, 20429, 'retryable'],
    [503, null, 'retryable'],
    [null, null, 'retryable'],
    [400, 21610, 'opted_out'],
    [400, 21614, 'not_mobile'],
    [400, 30006, 'not_mobile'],
    [400, 21211, 'permanent'],
  ] as const)('%s / %s → %s', (status, code, kind) => {
    expect(classifyProviderFailure(status, code)).toBe(kind);
  });
});
