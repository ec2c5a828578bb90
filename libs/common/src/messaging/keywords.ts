/**
 * Inbound SMS keyword parsing.
 *
 * The FCC's 2024 revocation rule (47 CFR 64.1200(a)(10)) lets a consumer revoke consent by any
 * reasonable means, and a missed revocation is a TCPA violation per message sent, while a false one
 * only silences reminders until the patient replies START. So the parser errs toward opt-out, within
 * these rules:
 *
 * 1. Text is compared without case, accents, or punctuation, and split into clauses at sentence
 *    punctuation and at "but"/"pero", so that a negation only reaches the clause it is in.
 * 2. Opt-out when the whole message, its words joined, is an opt-out keyword ("opt-out", "S T O P"),
 *    or clause by clause:
 *    a. A clause made only of keywords (at least one of them an opt-out keyword), courtesy words
 *       ("please", "now", "por favor") and messaging objects ("it", "these texts", "me"):
 *       "STOP", "Stop please", "stop it", "STOP ALL", "Wrong person. Stop." Any other word disqualifies
 *       the clause, so "stop by tomorrow", "don't stop", "bus stop" and "the end" do not opt out.
 *       PARA ("for" in Spanish) counts only next to courtesy words: "para mí" is not a revocation.
 *    b. A clause containing a revocation phrase that is negative in form ("do not text me", "no more
 *       texts", "no me envíen más mensajes"), whatever surrounds it. Spanish "no paran de enviarme"
 *       ("they never stop sending me") is a complaint, so it counts too.
 *    c. A clause containing a positive revocation phrase ("stop texting", "opt out", "unsubscribe",
 *       "remove me", "wrong number", "dejen de enviarme") with no negation before it in the clause
 *       ("please don't stop texting me", "no dejen de enviarme" are not revocations), unless the
 *       negation follows "why": "why won't you stop texting me" is one. English "no" is read as an
 *       interjection, not a negation: "No stop texting me" revokes.
 *    Phrases are specific to messaging ("stop texting", never a bare "stop" inside a sentence), so
 *    no length limit applies: a longer "wrong number, this isn't Maria, stop texting me" still counts.
 *    Phrases about calls ("stop calling me") are left out: they revoke voice, not SMS, consent.
 * 3. Opt-in and help: the whole message must be keywords of that one intent, with courtesy words and
 *    objects allowed ("yes please", "help me"); SI ("if" in Spanish) only next to courtesy words.
 * 4. Anything else, the empty message included, is 'none'.
 */

export type InboundIntent = 'opt_out' | 'opt_in' | 'help' | 'none';

const OPT_OUT_KEYWORDS = new Set([
  'stop',
  'stopall',
  'unsubscribe',
  'cancel',
  'end',
  'quit',
  'revoke',
  'optout',
  'alto',
  'parar',
  'para',
  'cancelar',
  'detener',
  'baja',
]);
const OPT_IN_KEYWORDS = new Set(['start', 'yes', 'unstop', 'si']);
const HELP_KEYWORDS = new Set(['help', 'info', 'ayuda']);

/** Keywords that are also common words, trusted only beside courtesy words. */
const BARE_ONLY_KEYWORDS = new Set(['para', 'si']);

const COURTESY = new Set([
  'please',
  'pls',
  'plz',
  'now',
  'thanks',
  'thank',
  'you',
  'thx',
  'ty',
  'ok',
  'okay',
  'just',
  'por',
  'favor',
  'porfavor',
  'gracias',
  'ya',
  'ahora',
]);

const OBJECTS = new Set([
  'it',
  'this',
  'that',
  'these',
  'those',
  'them',
  'me',
  'all',
  'everything',
  'text',
  'texts',
  'texting',
  'txt',
  'txts',
  'message',
  'messages',
  'messaging',
  'msg',
  'msgs',
  'sms',
  'sending',
  'reminders',
  'notifications',
  'alerts',
  'subscription',
  'los',
  'las',
  'mensajes',
  'textos',
  'esto',
  'estos',
  'eso',
  'todo',
  'todos',
  'suscripcion',
]);

const EN_NEGATIONS = new Set([
  'not',
  "don't",
  'dont',
  'never',
  'cannot',
  "can't",
  'cant',
  "won't",
  'wont',
  "didn't",
  'didnt',
  "doesn't",
  'doesnt',
  "shouldn't",
  'shouldnt',
  "wouldn't",
  'wouldnt',
]);
const ES_NEGATIONS = new Set(['no', 'nunca', 'jamas', 'tampoco', 'ni']);

const MESSAGE_WORDS_EN = 'texts?|txts?|messages?|msgs?|sms|reminders?|notifications?|alerts?';
const MESSAGES_EN = `(?:${MESSAGE_WORDS_EN})`;
const MESSAGES_ES = '(?:mensajes|textos|sms|recordatorios|avisos|notificaciones)';

/** Builds a matcher for a phrase that must start and end on word boundaries of a normalized clause. */
function phrase(source: string): RegExp {
  return new RegExp(`(?:^| )(?:${source})(?= |$)`);
}

/** Revocations that are negative in form, so a negation is part of them rather than a reversal. */
const NEGATIVE_FORM_REVOCATIONS: readonly RegExp[] = [
  phrase(
    "(?:do not|don't|dont|never) (?:(?:call|email|phone) (?:me )?(?:or|and|nor) )?(?:text|txt|message|msg|sms|contact|email)",
  ),
  phrase("(?:do not|don't|dont|never) send (?:me|this number|any|more|" + MESSAGES_EN + ')'),
  phrase('no more ' + MESSAGES_EN),
  phrase(
    "(?:do not|don't|dont) (?:want|need) (?:to (?:get|receive) )?(?:any |these |those |your |the )?(?:more )?" +
      MESSAGES_EN,
  ),
  phrase('no (?:me )?(?:escriban|escriba|escribas|contacten|contacte|texteen|textee)'),
  phrase('no (?:me )?(?:envien|envie|envies|manden|mande|mandes) (?:mas|nada|' + MESSAGES_ES + ')'),
  phrase('no mas ' + MESSAGES_ES),
  // "para de enviarme" (tú imperative) asks to stop; "no paran de enviarme" complains they never do.
  phrase('(?:no )?(?:para|paran|dejan|deja) de (?:enviar|mandar|escribir|textear|contactar)[a-z]*'),
  phrase(
    '(?:no|ya no) (?:quiero|deseo|necesito) (?:recibir |que me (?:envien|manden) )?(?:mas |estos |sus |los )?' +
      MESSAGES_ES,
  ),
];

interface PositiveRevocation {
  pattern: RegExp;
  negations: ReadonlySet<string>;
}

/** Revocations that a preceding negation in the same clause reverses. */
const POSITIVE_REVOCATIONS: readonly PositiveRevocation[] = [
  ...[
    phrase(
      '(?:stop|quit|cease|end) (?:texting|txting|messaging|msging|sending|contacting|emailing|spamming)',
    ),
    phrase(
      '(?:stop|quit|cease|end|cancel) (?:all |all the |all of the |all these |the |these |those |your |my )?(?:' +
        MESSAGE_WORDS_EN +
        '|subscription)',
    ),
    phrase('stop (?:getting|receiving)'),
    phrase('opt out|optout|opting out|unsubscribe|unsub|revoke|revoking'),
    phrase('remove (?:me|my number|this number)|take (?:me|my number|this number) off|delete my number'),
    phrase('wrong (?:number|person|phone)|leave me alone'),
  ].map((pattern) => ({ pattern, negations: EN_NEGATIONS })),
  ...[
    phrase(
      '(?:dejen|deje|dejar|paren|pare|parar|detengan|detenga|basta) de ' +
        '(?:enviar|mandar|escribir|textear|contactar|recibir)[a-z]*',
    ),
    phrase('(?:darme|dame|denme|deme|dar) de baja'),
    phrase('cancelar (?:la |mi )?suscripcion'),
    phrase('(?:borrenme|quitenme|eliminenme|saquenme|borrarme|quitarme|eliminarme|sacarme)'),
    phrase('numero equivocado|persona equivocada'),
  ].map((pattern) => ({ pattern, negations: ES_NEGATIONS })),
];

/** Lower case, accents and compatibility forms folded, apostrophe look-alikes unified. */
function normalize(body: string): string {
  return body
    .replace(/[\u2018\u2019\u02BC\u00B4`]/g, "'")
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .toLowerCase();
}

function clauses(normalized: string): string[][] {
  return normalized
    .split(/[.,;:!?¡¿\n\r]+|\b(?:but|pero)\b/)
    .map(tokens)
    .filter((clause) => clause.length > 0);
}

function tokens(text: string): string[] {
  return text
    .split(/[^\p{L}\p{N}']+/u)
    .map(trimApostrophes)
    .filter((token) => token.length > 0);
}

/** Without leading and trailing apostrophes; a loop, where /'+$/ would backtrack over a long run at every start. */
function trimApostrophes(token: string): string {
  let start = 0;
  let end = token.length;
  while (start < end && token[start] === "'") start++;
  while (end > start && token[end - 1] === "'") end--;
  return token.slice(start, end);
}

function isKeyword(token: string): boolean {
  return OPT_OUT_KEYWORDS.has(token) || OPT_IN_KEYWORDS.has(token) || HELP_KEYWORDS.has(token);
}

/** Rule 2a: the clause is only keywords, courtesy words and objects, with an opt-out keyword. */
function isKeywordClause(clause: readonly string[]): boolean {
  const words = clause.filter((token) => !COURTESY.has(token));
  const hasObject = words.some((token) => OBJECTS.has(token));
  const keywords = words.filter((token) => !OBJECTS.has(token));
  if (keywords.length === 0 || !keywords.every(isKeyword)) return false;
  const optOuts = keywords.filter(
    (token) => OPT_OUT_KEYWORDS.has(token) && !(hasObject && BARE_ONLY_KEYWORDS.has(token)),
  );
  return optOuts.length > 0;
}

function isNegated(before: readonly string[], negations: ReadonlySet<string>): boolean {
  for (let i = 0; i < before.length; i += 1) {
    const token = before[i];
    if (token === undefined) continue;
    if (token === 'why' || (token === 'por' && before[i + 1] === 'que')) return false;
    if (negations.has(token)) return true;
  }
  return false;
}

function revokesInClause(clause: readonly string[]): boolean {
  if (isKeywordClause(clause)) return true;
  const text = clause.join(' ');
  if (NEGATIVE_FORM_REVOCATIONS.some((pattern) => pattern.test(text))) return true;
  return POSITIVE_REVOCATIONS.some(({ pattern, negations }) => {
    const match = pattern.exec(text);
    return match !== null && !isNegated(tokens(text.slice(0, match.index)), negations);
  });
}

/** Rule 3: every word is a keyword of `intent`, a courtesy word or an object. */
function isOnly(words: readonly string[], keywordSet: ReadonlySet<string>): boolean {
  const rest = words.filter((token) => !COURTESY.has(token));
  const hasObject = rest.some((token) => OBJECTS.has(token));
  const keywords = rest.filter((token) => !OBJECTS.has(token));
  return (
    keywords.length > 0 &&
    keywords.every((token) => keywordSet.has(token) && !(hasObject && BARE_ONLY_KEYWORDS.has(token)))
  );
}

export function parseInboundKeyword(body: string): InboundIntent {
  const parts = clauses(normalize(body));
  const words = parts.flat();
  if (words.length === 0) return 'none';
  // "opt-out", "stop all" and "s t o p" joined back into one keyword.
  if (OPT_OUT_KEYWORDS.has(words.join(''))) return 'opt_out';
  if (parts.some(revokesInClause)) return 'opt_out';
  if (isOnly(words, OPT_IN_KEYWORDS)) return 'opt_in';
  if (isOnly(words, HELP_KEYWORDS)) return 'help';
  return 'none';
}
