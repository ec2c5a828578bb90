import twilio from 'twilio';
import type { Language } from '@rxnotify/common/messaging';
import { twimlText } from '@rxnotify/common/twilio/twiml-text';

function voiceFor(language: Language) {
  return language === 'es'
    ? { voice: 'Polly.Lupe' as const, language: 'es-US' as const }
    : { voice: 'Polly.Joanna' as const, language: 'en-US' as const };
}

/** What a person who answers hears: the message, then the press-9 menu (answered by consent-api). */
export function callTwiml(text: string, language: Language, gatherUrl: string): string {
  const response = new twilio.twiml.VoiceResponse();
  const voice = voiceFor(language);
  response.say(voice, twimlText(text));
  const gather = response.gather({ numDigits: 1, timeout: 5, action: gatherUrl });
  gather.say(
    voice,
    language === 'es' ? 'Para dejar de recibir estas llamadas, oprima 9.' : 'To stop these calls, press 9.',
  );
  return response.toString();
}

/** What a voicemail records: the message alone, since nobody is there to press a key. */
export function voicemailTwiml(text: string, language: Language): string {
  const response = new twilio.twiml.VoiceResponse();
  response.say(voiceFor(language), twimlText(text));
  response.hangup();
  return response.toString();
}
