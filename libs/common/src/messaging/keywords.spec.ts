import fc from 'fast-check';
import { parseInboundKeyword, type InboundIntent } from './keywords';

const OPT_OUT = [
  'STOP',
  'STOPALL',
  'UNSUBSCRIBE',
  'CANCEL',
  'END',
  'QUIT',
  'REVOKE',
  'OPTOUT',
  'ALTO',
  'PARAR',
  'PARA',
  'CANCELAR',
  'DETENER',
  'BAJA',
];
const OPT_IN = ['START', 'YES', 'UNSTOP', 'SI', 'SÍ'];
const HELP = ['HELP', 'INFO', 'AYUDA'];

/** The same keyword in other cases, with surrounding whitespace and punctuation. */
function spellings(keyword: string): string[] {
  const lower = keyword.toLowerCase();
  const title = lower.charAt(0).toUpperCase() + lower.slice(1);
  return [
    keyword,
    lower,
    title,
    `  ${lower}  `,
    `${keyword}!!`,
    `${title}.`,
    `¡${lower}!`,
    `\t${keyword}\n`,
    `"${lower}"`,
    `${title}?`,
  ];
}

function table(keywords: readonly string[], intent: InboundIntent): [string, InboundIntent][] {
  return keywords.flatMap((keyword) =>
    spellings(keyword).map((body): [string, InboundIntent] => [body, intent]),
  );
}

describe('parseInboundKeyword', () => {
  describe('keywords in any case, spacing and punctuation', () => {
    it.each(table(OPT_OUT, 'opt_out'))('%j is an opt-out', (body, intent) => {
      expect(parseInboundKeyword(body)).toBe(intent);
    });
    it.each(table(OPT_IN, 'opt_in'))('%j is an opt-in', (body, intent) => {
      expect(parseInboundKeyword(body)).toBe(intent);
    });
    it.each(table(HELP, 'help'))('%j is help', (body, intent) => {
      expect(parseInboundKeyword(body)).toBe(intent);
    });
  });

  it.each([
    'opt out',
    'Opt-Out',
    'opt-out.',
    'stop all',
    'S T O P',
    'Stop please',
    'please STOP!!',
    'STOP NOW',
    'Stop it',
    'stop these texts',
    'Stop all messages',
    'Cancel my subscription',
    'BAJA por favor',
    'ＳＴＯＰ',
    'STOP 🛑',
    'Yes. Stop',
    'Thanks but stop',
    'Wrong person. Stop.',
  ])('%j is a keyword opt-out', (body) => {
    expect(parseInboundKeyword(body)).toBe('opt_out');
  });

  it.each([
    'please stop texting me',
    'stop texting me',
    'Stop texting me!',
    'stop sending me messages',
    'unsubscribe me',
    'remove me from this list',
    'Please remove my number',
    'take me off your list',
    'no more texts',
    'No more messages please',
    'do not text me',
    "don't text me anymore",
    'Don\u2019t text me anymore',
    'Dont text me',
    "Don't call or text me",
    'never text me again',
    "I don't want these texts anymore",
    "I don't need any more reminders",
    'I want to stop getting these texts',
    'How do I opt out?',
    'I revoke my consent',
    'Can you stop texting me?',
    "why won't you stop texting me",
    'No stop texting me',
    'No, stop texting me',
    "Wrong number, this isn't Maria, please stop texting me",
    'I like the reminders but stop texting me at night',
    'no me envíen más mensajes',
    'No me envien mas mensajes',
    'no mas mensajes',
    'No más mensajes por favor',
    'dejen de enviarme mensajes',
    'Por favor deje de mandarme textos',
    '¡No paran de mandarme mensajes!',
    'Para de escribirme',
    'Dame de baja',
    'quiero darme de baja',
    'Ya no quiero recibir mensajes',
    'Número equivocado',
  ])('%j is a plain-language revocation', (body) => {
    expect(parseInboundKeyword(body)).toBe('opt_out');
  });

  it.each([
    "don't stop",
    'do not stop',
    "Please don't stop texting me",
    'please do not stop sending me reminders',
    'never stop',
    'Never stop texting me',
    'stop by tomorrow?',
    'Stop by tomorrow',
    "I can't stop by today",
    'I will stop by tomorrow, don\u2019t stop sending these, they help.',
    'what time do you close',
    'Bus stop',
    'The end',
    'cancel my refill',
    "Don't call me, text me",
    "I don't want to opt out",
    'no dejen de enviarme mensajes',
    'para mí',
    '¿Para cuándo?',
    'Y es',
    'si me',
    'Yes it is',
    'No',
    'Ok',
    'Thank you',
    'Gracias',
    '',
    '   ',
    '?!',
    '🛑',
  ])('%j is not a revocation or a keyword', (body) => {
    expect(parseInboundKeyword(body)).toBe('none');
  });

  it.each<[string, InboundIntent]>([
    ['yes please', 'opt_in'],
    ['Yes, thanks!', 'opt_in'],
    ['Sí, gracias', 'opt_in'],
    ['start texting me', 'opt_in'],
    ['help me', 'help'],
    ['Info please', 'help'],
    ['Yes, help', 'none'],
  ])('%j is %s', (body, intent) => {
    expect(parseInboundKeyword(body)).toBe(intent);
  });

  it('reads a bare keyword the same whatever punctuation and spacing surround it', () => {
    const keyword = fc.constantFrom(...OPT_OUT, ...OPT_IN, ...HELP);
    const padding = fc.string({
      unit: fc.constantFrom(' ', '\t', '\n', '.', '!', '?', ',', '¡', '¿', '"', "'", '*'),
    });
    fc.assert(
      fc.property(keyword, padding, padding, fc.boolean(), (word, before, after, lower) => {
        const bare = parseInboundKeyword(word);
        expect(parseInboundKeyword(`${before}${lower ? word.toLowerCase() : word}${after}`)).toBe(bare);
      }),
      { numRuns: 300 },
    );
  });

  it('never throws and answers one of the four intents for any text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (body) => {
        expect(['opt_out', 'opt_in', 'help', 'none']).toContain(parseInboundKeyword(body));
      }),
      { numRuns: 300 },
    );
  });

  it('treats a negated "stop texting me" as no revocation, however it is phrased before', () => {
    const negation = fc.constantFrom("don't", 'do not', 'never', 'please never', "please don't ever");
    fc.assert(
      fc.property(negation, fc.constantFrom('texting', 'sending', 'messaging'), (neg, verb) => {
        expect(parseInboundKeyword(`${neg} stop ${verb} me`)).toBe('none');
        expect(parseInboundKeyword(`stop ${verb} me`)).toBe('opt_out');
      }),
    );
  });
});
