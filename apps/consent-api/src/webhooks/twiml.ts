import type { Language } from '@rxnotify/common/messaging';
import { twimlText } from '@rxnotify/common/twilio/twiml-text';
import twilio from 'twilio';
import type { GatherOutcome } from './voice-gather.service';

/** TwiML for an SMS webhook: one `<Message>`, or an empty `<Response/>` for no reply. */
export function messagingTwiml(reply: string | null): string {
  const response = new twilio.twiml.MessagingResponse();
  if (reply !== null) response.message(twimlText(reply));
  return response.toString();
}

// The same voices the dispatcher's calls speak with, so the answer sounds like the call.
const VOICES = {
  en: { voice: 'Polly.Joanna', language: 'en-US' },
  es: { voice: 'Polly.Lupe', language: 'es-US' },
} as const;

const SCRIPT: Record<Language, { optedOut: (pharmacy: string) => string; menu: string; goodbye: string }> = {
  en: {
    optedOut: (pharmacy) => `You will not receive further automated calls from ${pharmacy}. Goodbye.`,
    menu: 'Press 9 to stop these calls.',
    goodbye: 'Goodbye.',
  },
  es: {
    optedOut: (pharmacy) => `No recibirá más llamadas automáticas de ${pharmacy}. Adiós.`,
    menu: 'Para dejar de recibir estas llamadas, oprima 9.',
    goodbye: 'Adiós.',
  },
};

/** TwiML for the keypress answer; `retryUrl` is where a repeated menu posts its keypress. */
export function gatherTwiml(outcome: GatherOutcome, retryUrl: string): string {
  const response = new twilio.twiml.VoiceResponse();
  const voice = VOICES[outcome.language];
  const script = SCRIPT[outcome.language];
  switch (outcome.kind) {
    case 'opted_out':
      response.say(voice, twimlText(script.optedOut(outcome.pharmacyName.replace(/\s+/g, ' ').trim())));
      response.hangup();
      break;
    case 'repeat_menu':
      response.gather({ numDigits: 1, timeout: 5, action: retryUrl }).say(voice, script.menu);
      break;
    case 'goodbye':
      response.say(voice, script.goodbye);
      response.hangup();
      break;
  }
  return response.toString();
}
