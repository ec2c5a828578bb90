import { callTwiml, voicemailTwiml } from './voice-twiml';

describe('call TwiML', () => {
  it('speaks a message whose names hold characters XML cannot carry, without them', () => {
    // U+FFFE in a pharmacy name, half an emoji in a drug name: the TwiML builder threw on both after the
    // send's intent was written, leaving the notice stuck in sending.
    const text = 'Hello from Acme\ufffe Pharmacy. Your Lisinopril \ud83d is ready.';
    const call = callTwiml(text, 'en', 'https://consent.example/webhooks/twilio/voice/gather');
    expect(call).toContain('Hello from Acme Pharmacy. Your Lisinopril  is ready.</Say>');
    expect(call).toContain('To stop these calls, press 9.');
    expect(voicemailTwiml(text, 'es')).toContain('Hello from Acme Pharmacy.');
  });
});
