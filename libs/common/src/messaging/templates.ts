/**
 * Message text for patients: SMS notifications, TwiML keyword replies and voice scripts, in English
 * and Spanish. By default no drug name or other PHI: only the pharmacy's name and callback phone. A
 * patient who opted in to detailed messages gets texts naming the drug (`TemplateVars.drugName`), and a
 * pharmacy may replace the SMS wording with its own templates (`PharmacyTemplates`, validated by
 * `validateTemplate` when saved).
 *
 * Every SMS fits one segment. Each message has variants from fullest to most compact; the first that
 * fits with the whole pharmacy name wins. A name too long for any of them is cut (at a word boundary
 * where that keeps most of it), never the call to action or the opt-out line. Names are transliterated
 * to GSM-7 (á → a, emoji dropped) so a text keeps 160 characters; only a name with nothing
 * transliterable (all CJK or emoji) is sent as is, in UCS-2, within 70 units. Spanish bodies use
 * wording that stays GSM-7: é, ñ and ¿ are in the alphabet ("médico"), á, í, ó and ú are not, so
 * "ya se puede recoger" stands in for "está lista". Voice scripts have no such limit and are accented.
 */
import { hasLoneSurrogate, LONE_SURROGATE_PROBLEM } from '../unicode';
import { GSM7_SEGMENT_LIMIT, UCS2_SEGMENT_LIMIT, isGsm7, smsLength, toGsm7 } from './gsm7';

export type Language = 'en' | 'es';
export type NotificationKind =
  'ready' | 'refill_due' | 'renewal_needed' | 'unclaimed_pickup' | 'adherence_gap';

export interface TemplateVars {
  pharmacyName: string;
  callbackPhone: string;
  /** Prescriptions covered by a coalesced message, 1 to 99; default 1. */
  count?: number;
  /** Unclaimed pickup reminder step; default 1. */
  step?: 1 | 2 | 3;
  /** Already formatted, e.g. "Nov 30"; required by unclaimed pickup step 3. */
  returnToStockDate?: string;
  /**
   * The drug, as the fill names it ("Lisinopril 10 mg"). Pass it only for a patient who opted in to
   * detailed messages and a notice covering exactly one fill; it is ignored when `count` is above 1.
   * The built-in texts then name it, transliterated to GSM-7 and cut at a word boundary to keep one
   * segment; when not even its first word fits, the generic text goes out. A pharmacy's own template
   * for the notice (`PharmacyTemplates`) wins over it: templates cannot name the drug.
   */
  drugName?: string;
}

export interface ConfirmationVars {
  pharmacyName: string;
  callbackPhone: string;
}

export const OPT_OUT_LINE: Record<Language, string> = {
  en: 'Reply STOP to opt out.',
  es: 'Responda ALTO para cancelar.',
};

/**
 * A pharmacy's own SMS wording (`settings.templates`), per template and language. Unclaimed pickup has one
 * template per reminder step. Placeholders:
 *   {pharmacy}  the pharmacy's name as texts show it (transliterated to GSM-7, never cut); required
 *   {phone}     the pharmacy's callback phone
 *   {count}     how many prescriptions the text covers, 1 to 99
 *   {date}      the return-to-stock date, e.g. "Nov 30"; only in unclaimed_pickup_3, and required there
 * Nothing else between braces is allowed, {drug} included: only the built-in texts name the drug, and only
 * for patients who opted in to detailed messages. A template must end with the opt-out line of its
 * language (OPT_OUT_LINE) and, filled in with the pharmacy's real name and phone, 99 and a date of
 * MAX_RETURN_TO_STOCK_DATE_LENGTH characters, fit one segment (160 GSM-7 characters; 70 when a character
 * such as á needs UCS-2).
 */
export const TEMPLATE_KEYS = [
  'ready',
  'refill_due',
  'renewal_needed',
  'unclaimed_pickup_1',
  'unclaimed_pickup_2',
  'unclaimed_pickup_3',
  'adherence_gap',
] as const;
export type TemplateKey = (typeof TEMPLATE_KEYS)[number];
export type PharmacyTemplates = Partial<Record<TemplateKey, Partial<Record<Language, string>>>>;
export const TEMPLATE_PLACEHOLDERS = ['pharmacy', 'phone', 'count', 'date'] as const;

/** What a template is checked against when saved: the pharmacy it belongs to. */
export interface TemplateContext {
  pharmacyName: string;
  callbackPhone: string;
}

/** E.164 numbers are at most 16 characters; the compact UCS-2 variants are sized for that. */
export const MAX_CALLBACK_PHONE_LENGTH = 16;
/** Room for "Nov 30", "30 de noviembre", "11/30/2025". */
export const MAX_RETURN_TO_STOCK_DATE_LENGTH = 16;
export const MAX_COUNT = 99;
/** A cut name keeps at least this many characters while a fuller variant is still tried. */
const MIN_NAME_IN_FULL_VARIANT = 24;
const MAX_VOICE_NAME_WORDS = 8;
const MAX_VOICE_NAME_LENGTH = 60;
const MAX_VOICE_DRUG_WORDS = 5;
const MAX_VOICE_DRUG_LENGTH = 40;

interface Context {
  n: number;
  one: boolean;
  step: 1 | 2 | 3;
  phone: string;
  date: string;
}

/** SMS bodies, fullest first: the text is "<name>: <body> <opt-out line>". */
type Bodies = (c: Context) => readonly string[];

const SMS_BODIES: Record<Language, Record<NotificationKind, Bodies>> = {
  en: {
    ready: (c) => {
      const what = c.one ? 'Your prescription is' : `${c.n} prescriptions are`;
      return [
        `${what} ready for pickup. Questions? Call ${c.phone}.`,
        `${what} ready for pickup.`,
        c.one ? 'Prescription ready for pickup.' : `${c.n} prescriptions ready for pickup.`,
      ];
    },
    refill_due: (c) => [
      c.one
        ? `Your prescription is due for a refill. Call ${c.phone} to refill it.`
        : `${c.n} of your prescriptions are due for a refill. Call ${c.phone} to refill them.`,
      c.one ? `Refill due. Call ${c.phone}.` : `${c.n} refills due. Call ${c.phone}.`,
    ],
    renewal_needed: (c) => [
      c.one
        ? `Your prescription has no refills left. Call ${c.phone} and we will ask your prescriber to renew it.`
        : `${c.n} of your prescriptions have no refills left. Call ${c.phone} and we will ask your prescriber to renew them.`,
      c.one
        ? `Your prescription needs renewal. Call ${c.phone}.`
        : `${c.n} prescriptions need renewal. Call ${c.phone}.`,
      `Renewal needed. Call ${c.phone}.`,
    ],
    unclaimed_pickup: (c) => {
      const it = c.one ? 'it' : 'them';
      const waiting = c.one ? 'your prescription is' : `${c.n} prescriptions are`;
      const awaiting = c.one ? 'Prescription awaiting pickup.' : `${c.n} prescriptions awaiting pickup.`;
      switch (c.step) {
        case 1:
          return [
            `${capitalize(waiting)} still waiting for pickup. Questions? Call ${c.phone}.`,
            `${capitalize(waiting)} still waiting for pickup.`,
            awaiting,
          ];
        case 2:
          return [
            `Reminder: ${waiting} still waiting for pickup. Questions? Call ${c.phone}.`,
            `Reminder: ${waiting} still waiting for pickup.`,
            awaiting,
          ];
        case 3: {
          const returns = c.one ? 'Your prescription returns' : `${c.n} prescriptions return`;
          return [
            `${returns} to stock on ${c.date}. Please pick ${it} up before then. Call ${c.phone}.`,
            `${returns} to stock on ${c.date}. Please pick ${it} up before then.`,
            `${returns} to stock ${c.date}. Pick up before.`,
            `Pick up before ${c.date}.`,
          ];
        }
      }
    },
    adherence_gap: (c) => [
      c.one
        ? `Your prescription looks past due for a refill. Call ${c.phone} and we can help.`
        : `${c.n} of your prescriptions look past due for a refill. Call ${c.phone} and we can help.`,
      c.one ? `Refill past due. Call ${c.phone}.` : `${c.n} refills past due. Call ${c.phone}.`,
      `Refill overdue. Call ${c.phone}.`,
    ],
  },
  es: {
    ready: (c) => {
      const what = c.one ? 'Su receta ya se puede recoger' : `${c.n} recetas ya se pueden recoger`;
      return [
        `${what}. ¿Preguntas? Llame al ${c.phone}.`,
        `${what}.`,
        c.one ? 'Receta lista.' : `${c.n} recetas listas.`,
      ];
    },
    refill_due: (c) => [
      c.one
        ? `Es hora de resurtir su receta. Llame al ${c.phone} para resurtirla.`
        : `Es hora de resurtir ${c.n} de sus recetas. Llame al ${c.phone} para resurtirlas.`,
      `Es hora de resurtir ${c.one ? 'su receta' : `${c.n} recetas`}. Llame al ${c.phone}.`,
      `Para resurtir: ${c.phone}.`,
    ],
    renewal_needed: (c) => [
      c.one
        ? `Su receta ya no tiene resurtidos. Llame al ${c.phone} y pediremos una nueva a su médico.`
        : `${c.n} de sus recetas ya no tienen resurtidos. Llame al ${c.phone} y pediremos nuevas a su médico.`,
      `${c.one ? 'Su receta necesita' : `${c.n} recetas necesitan`} renovarse. Llame al ${c.phone}.`,
      `Para renovar: ${c.phone}.`,
    ],
    unclaimed_pickup: (c) => {
      const waiting = c.one ? 'su receta sigue lista' : `${c.n} recetas siguen listas`;
      const pickUp = c.one ? 'recogerla' : 'recogerlas';
      const awaiting = c.one ? 'Receta sin recoger.' : `${c.n} recetas sin recoger.`;
      switch (c.step) {
        case 1:
          return [
            `${capitalize(waiting)} para recoger. ¿Preguntas? Llame al ${c.phone}.`,
            `${capitalize(waiting)} para recoger.`,
            awaiting,
          ];
        case 2:
          return [
            `Recordatorio: ${waiting} para recoger. ¿Preguntas? Llame al ${c.phone}.`,
            `Recordatorio: ${waiting} para recoger.`,
            awaiting,
          ];
        case 3: {
          const returns = c.one ? 'Su receta regresa' : `${c.n} recetas regresan`;
          return [
            `${returns} al inventario el ${c.date}. Pase a ${pickUp} antes. Llame al ${c.phone}.`,
            `${returns} al inventario el ${c.date}. Pase a ${pickUp} antes de esa fecha.`,
            `${returns} al inventario el ${c.date}. Pase antes.`,
            `Recoja antes del ${c.date}.`,
          ];
        }
      }
    },
    adherence_gap: (c) => [
      c.one
        ? `Su receta tiene el resurtido atrasado. Llame al ${c.phone} y con gusto le ayudamos.`
        : `${c.n} de sus recetas tienen el resurtido atrasado. Llame al ${c.phone} y con gusto le ayudamos.`,
      `${c.one ? 'Resurtido atrasado' : `${c.n} resurtidos atrasados`}. Llame al ${c.phone}.`,
      `Resurta ya: ${c.phone}.`,
    ],
  },
};

/**
 * SMS bodies naming the drug (detailed messages), one prescription only, fullest first. `d` is the drug
 * name, possibly cut at a word boundary.
 */
type DetailedBodies = (c: Context, d: string) => readonly string[];

const DETAILED_SMS_BODIES: Record<Language, Record<NotificationKind, DetailedBodies>> = {
  en: {
    ready: (c, d) => [
      `Your ${d} is ready for pickup. Questions? Call ${c.phone}.`,
      `Your ${d} is ready for pickup.`,
      `Ready for pickup: ${d}.`,
    ],
    refill_due: (c, d) => [
      `Your ${d} is due for a refill. Call ${c.phone} to refill it.`,
      `Refill due: ${d}. Call ${c.phone}.`,
    ],
    renewal_needed: (c, d) => [
      `Your ${d} has no refills left. Call ${c.phone} and we will ask your prescriber to renew it.`,
      `Your ${d} needs renewal. Call ${c.phone}.`,
      `Renewal needed: ${d}. Call ${c.phone}.`,
    ],
    unclaimed_pickup: (c, d) => {
      switch (c.step) {
        case 1:
          return [
            `Your ${d} is still waiting for pickup. Questions? Call ${c.phone}.`,
            `Your ${d} is still waiting for pickup.`,
            `Awaiting pickup: ${d}.`,
          ];
        case 2:
          return [
            `Reminder: your ${d} is still waiting for pickup. Questions? Call ${c.phone}.`,
            `Reminder: your ${d} is still waiting for pickup.`,
            `Awaiting pickup: ${d}.`,
          ];
        case 3:
          return [
            `Your ${d} returns to stock on ${c.date}. Please pick it up before then. Call ${c.phone}.`,
            `Your ${d} returns to stock on ${c.date}. Please pick it up before then.`,
            `Your ${d} returns to stock ${c.date}. Pick up before.`,
            `Pick up ${d} before ${c.date}.`,
          ];
      }
    },
    adherence_gap: (c, d) => [
      `Your ${d} looks past due for a refill. Call ${c.phone} and we can help.`,
      `Refill past due: ${d}. Call ${c.phone}.`,
    ],
  },
  es: {
    ready: (c, d) => [
      `Su receta de ${d} ya se puede recoger. ¿Preguntas? Llame al ${c.phone}.`,
      `Su receta de ${d} ya se puede recoger.`,
      `Receta lista: ${d}.`,
    ],
    refill_due: (c, d) => [
      `Es hora de resurtir su receta de ${d}. Llame al ${c.phone} para resurtirla.`,
      `Es hora de resurtir ${d}. Llame al ${c.phone}.`,
      `Para resurtir ${d}: ${c.phone}.`,
    ],
    renewal_needed: (c, d) => [
      `Su receta de ${d} ya no tiene resurtidos. Llame al ${c.phone} y pediremos una nueva a su médico.`,
      `Su receta de ${d} necesita renovarse. Llame al ${c.phone}.`,
      `Para renovar ${d}: ${c.phone}.`,
    ],
    unclaimed_pickup: (c, d) => {
      switch (c.step) {
        case 1:
          return [
            `Su receta de ${d} sigue lista para recoger. ¿Preguntas? Llame al ${c.phone}.`,
            `Su receta de ${d} sigue lista para recoger.`,
            `Sin recoger: ${d}.`,
          ];
        case 2:
          return [
            `Recordatorio: su receta de ${d} sigue lista para recoger. ¿Preguntas? Llame al ${c.phone}.`,
            `Recordatorio: su receta de ${d} sigue lista para recoger.`,
            `Sin recoger: ${d}.`,
          ];
        case 3:
          return [
            `Su receta de ${d} regresa al inventario el ${c.date}. Pase a recogerla antes. Llame al ${c.phone}.`,
            `Su receta de ${d} regresa al inventario el ${c.date}. Pase a recogerla antes de esa fecha.`,
            `Su receta de ${d} regresa al inventario el ${c.date}. Pase antes.`,
            `Recoja ${d} antes del ${c.date}.`,
          ];
      }
    },
    adherence_gap: (c, d) => [
      `Su receta de ${d} tiene el resurtido atrasado. Llame al ${c.phone} y con gusto le ayudamos.`,
      `Resurtido atrasado: ${d}. Llame al ${c.phone}.`,
    ],
  },
};

type Compose = (name: string) => string;

const CONFIRMATIONS: Record<Language, Record<'opt_out' | 'opt_in' | 'help', (phone: string) => Compose[]>> = {
  en: {
    opt_out: () => [
      (name) =>
        `You are unsubscribed from ${name} messages. No more messages will be sent. Reply START to resubscribe.`,
      (name) => `Unsubscribed from ${name} messages. Reply START to resubscribe.`,
      (name) => `${name}: unsubscribed. Reply START to resubscribe.`,
    ],
    opt_in: () => [
      (name) =>
        `${name}: You are resubscribed to prescription alerts. Msg&data rates may apply. Reply HELP for help. ${OPT_OUT_LINE.en}`,
      (name) =>
        `${name}: You are resubscribed to prescription alerts. Reply HELP for help. ${OPT_OUT_LINE.en}`,
      (name) => `${name}: resubscribed. ${OPT_OUT_LINE.en}`,
    ],
    help: (phone) => [
      (name) => `${name}: prescription notifications. Call ${phone} for help. ${OPT_OUT_LINE.en}`,
      (name) => `${name}: Call ${phone}. ${OPT_OUT_LINE.en}`,
    ],
  },
  es: {
    opt_out: () => [
      (name) =>
        `Se dio de baja de los mensajes de ${name}. No le enviaremos otros mensajes. Responda START para volver a suscribirse.`,
      (name) => `Baja confirmada de los mensajes de ${name}. Responda START para volver a suscribirse.`,
      (name) => `${name}: baja confirmada. Responda START para volver.`,
    ],
    opt_in: () => [
      (name) =>
        `${name}: Avisos de recetas reactivados. Pueden aplicar tarifas de mensajes y datos. Responda AYUDA para ayuda. ${OPT_OUT_LINE.es}`,
      (name) => `${name}: Avisos de recetas reactivados. Responda AYUDA para ayuda. ${OPT_OUT_LINE.es}`,
      (name) => `${name}: avisos reactivados. ${OPT_OUT_LINE.es}`,
    ],
    help: (phone) => [
      (name) => `${name}: avisos de recetas. Llame al ${phone} para ayuda. ${OPT_OUT_LINE.es}`,
      (name) => `${name}: Llame al ${phone}. ${OPT_OUT_LINE.es}`,
    ],
  },
};

type VoiceParts = (c: Context) => { message: string; callToAction: string };

const VOICE: Record<
  Language,
  { intro: (name: string) => string; kinds: Record<NotificationKind, VoiceParts> }
> = {
  en: {
    intro: (name) => `Hello, this is an automated message from ${name}.`,
    kinds: {
      ready: (c) => ({
        message: c.one
          ? 'Your prescription is ready for pickup.'
          : `${c.n} of your prescriptions are ready for pickup.`,
        callToAction: `If you have questions, please call us at ${c.phone}.`,
      }),
      refill_due: (c) => ({
        message: c.one
          ? 'Your prescription is due for a refill.'
          : `${c.n} of your prescriptions are due for a refill.`,
        callToAction: `To refill, please call us at ${c.phone}.`,
      }),
      renewal_needed: (c) => ({
        message: c.one
          ? 'Your prescription has no refills left. We can ask your prescriber to renew it.'
          : `${c.n} of your prescriptions have no refills left. We can ask your prescriber to renew them.`,
        callToAction: `Please call us at ${c.phone}.`,
      }),
      unclaimed_pickup: (c) => {
        const it = c.one ? 'it' : 'them';
        const waiting = c.one ? 'your prescription is' : `${c.n} of your prescriptions are`;
        const message =
          c.step === 1
            ? `${capitalize(waiting)} still waiting for pickup.`
            : c.step === 2
              ? `This is a reminder that ${waiting} still waiting for pickup. Please pick ${it} up soon.`
              : `${c.one ? 'Your prescription' : `${c.n} of your prescriptions`} will be returned to stock on ${c.date}. Please pick ${it} up before then.`;
        return { message, callToAction: `If you have questions, please call us at ${c.phone}.` };
      },
      adherence_gap: (c) => ({
        message: c.one
          ? 'It looks like your prescription is past due for a refill. We are here to help.'
          : `It looks like ${c.n} of your prescriptions are past due for a refill. We are here to help.`,
        callToAction: `Please call us at ${c.phone}.`,
      }),
    },
  },
  es: {
    intro: (name) => `Hola, este es un mensaje automático de ${name}.`,
    kinds: {
      ready: (c) => ({
        message: c.one
          ? 'Su receta está lista para recoger.'
          : `${c.n} de sus recetas están listas para recoger.`,
        callToAction: `Si tiene preguntas, llámenos al ${c.phone}.`,
      }),
      refill_due: (c) => ({
        message: c.one ? 'Es hora de resurtir su receta.' : `Es hora de resurtir ${c.n} de sus recetas.`,
        callToAction: `Para resurtir, llámenos al ${c.phone}.`,
      }),
      renewal_needed: (c) => ({
        message: c.one
          ? 'Su receta ya no tiene resurtidos. Podemos pedirle una nueva a su médico.'
          : `${c.n} de sus recetas ya no tienen resurtidos. Podemos pedirle nuevas a su médico.`,
        callToAction: `Por favor, llámenos al ${c.phone}.`,
      }),
      unclaimed_pickup: (c) => {
        const pickUp = c.one ? 'recogerla' : 'recogerlas';
        const waiting = c.one ? 'su receta sigue lista' : `${c.n} de sus recetas siguen listas`;
        const message =
          c.step === 1
            ? `${capitalize(waiting)} para recoger.`
            : c.step === 2
              ? `Le recordamos que ${waiting} para recoger. Por favor, pase a ${pickUp} pronto.`
              : `${c.one ? 'Su receta regresará' : `${c.n} de sus recetas regresarán`} al inventario el ${c.date}. Por favor, pase a ${pickUp} antes de esa fecha.`;
        return { message, callToAction: `Si tiene preguntas, llámenos al ${c.phone}.` };
      },
      adherence_gap: (c) => ({
        message: c.one
          ? 'Parece que su receta tiene el resurtido atrasado. Estamos para ayudarle.'
          : `Parece que ${c.n} de sus recetas tienen el resurtido atrasado. Estamos para ayudarle.`,
        callToAction: `Por favor, llámenos al ${c.phone}.`,
      }),
    },
  },
};

/** The spoken message naming the drug (detailed messages), one prescription only; the call to action is the generic one. */
const DETAILED_VOICE: Record<Language, Record<NotificationKind, (c: Context, d: string) => string>> = {
  en: {
    ready: (_c, d) => `Your ${d} is ready for pickup.`,
    refill_due: (_c, d) => `Your ${d} is due for a refill.`,
    renewal_needed: (_c, d) => `Your ${d} has no refills left. We can ask your prescriber to renew it.`,
    unclaimed_pickup: (c, d) =>
      c.step === 1
        ? `Your ${d} is still waiting for pickup.`
        : c.step === 2
          ? `This is a reminder that your ${d} is still waiting for pickup. Please pick it up soon.`
          : `Your ${d} will be returned to stock on ${c.date}. Please pick it up before then.`,
    adherence_gap: (_c, d) => `It looks like your ${d} is past due for a refill. We are here to help.`,
  },
  es: {
    ready: (_c, d) => `Su receta de ${d} está lista para recoger.`,
    refill_due: (_c, d) => `Es hora de resurtir su receta de ${d}.`,
    renewal_needed: (_c, d) =>
      `Su receta de ${d} ya no tiene resurtidos. Podemos pedirle una nueva a su médico.`,
    unclaimed_pickup: (c, d) =>
      c.step === 1
        ? `Su receta de ${d} sigue lista para recoger.`
        : c.step === 2
          ? `Le recordamos que su receta de ${d} sigue lista para recoger. Por favor, pase a recogerla pronto.`
          : `Su receta de ${d} regresará al inventario el ${c.date}. Por favor, pase a recogerla antes de esa fecha.`,
    adherence_gap: (_c, d) =>
      `Parece que su receta de ${d} tiene el resurtido atrasado. Estamos para ayudarle.`,
  },
};

/**
 * The pharmacy name as an SMS shows it before any shortening: control characters and runs of
 * whitespace made single spaces, transliterated to GSM-7, or left as is when nothing of it would
 * survive transliteration. Throws a RangeError for a name that is empty.
 */
export function smsPharmacyName(pharmacyName: string): string {
  const plain = collapseWhitespace(pharmacyName);
  const gsm = collapseWhitespace(toGsm7(plain));
  const name = /[\p{L}\p{N}]/u.test(gsm) ? gsm : plain;
  if (name === '') throw new RangeError('pharmacyName is empty');
  return name;
}

/**
 * The text of a notification. In order: the pharmacy's own template for this kind (and reminder step) and
 * language, when `overrides` has one that is valid and fits one segment as filled in; else, when
 * `vars.drugName` is given for one prescription, the built-in text naming the drug, if at least its first
 * word fits; else the built-in generic text.
 */
export function renderSms(
  kind: NotificationKind,
  language: Language,
  vars: TemplateVars,
  overrides?: PharmacyTemplates,
): string {
  const context = smsContext(kind, vars);
  const name = smsPharmacyName(vars.pharmacyName);
  const custom = renderOverride(templateKey(kind, context.step), language, context, name, overrides);
  if (custom !== undefined) return custom;
  const drug = context.one && vars.drugName !== undefined ? smsDrugName(vars.drugName) : undefined;
  const detailed = drug === undefined ? undefined : renderDetailed(kind, language, context, name, drug);
  if (detailed !== undefined) return detailed;
  const bodies = SMS_BODIES[language][kind](context);
  const optOut = OPT_OUT_LINE[language];
  return fitOneSegment(
    name,
    bodies.map((body) => (shown: string) => `${shown}: ${body} ${optOut}`),
  );
}

/**
 * The problems with one of a pharmacy's templates, each naming its path (`settings.templates.ready.en ...`);
 * empty when it may be saved. Checks the key, the placeholders, the opt-out line and, given the pharmacy it
 * belongs to, that it fits one segment filled in with the worst case: this pharmacy's name and callback
 * phone, a count of 99 and a return-to-stock date of MAX_RETURN_TO_STOCK_DATE_LENGTH characters. Without a
 * context the segment check is skipped (renderSms still checks the text it sends, and falls back to the
 * built-in text when a template does not fit).
 */
export function validateTemplate(
  key: string,
  language: Language,
  text: string,
  context?: TemplateContext,
  base = 'settings.templates',
): string[] {
  if (!isTemplateKey(key)) return [`${base}.${key} is not a known template`];
  const path = `${base}.${key}.${language}`;
  if (typeof text !== 'string') return [`${path} must be a string`];
  const problems = templateTextProblems(key, language, text, path);
  if (problems.length > 0 || context === undefined) return problems;
  let rendered: string;
  try {
    rendered = fillTemplate(text, {
      pharmacy: smsPharmacyName(context.pharmacyName),
      phone: smsPhone(context.callbackPhone),
      count: String(MAX_COUNT),
      date: 'D'.repeat(MAX_RETURN_TO_STOCK_DATE_LENGTH),
    });
  } catch (error) {
    return [`${path} cannot be checked: ${(error as Error).message}`];
  }
  const length = smsLength(rendered);
  if (length.fitsOneSegment) return [];
  if (length.encoding === 'GSM-7') {
    const doubled = length.units > Array.from(rendered).length ? ' (^ { } [ ] ~ | \\ and € count as 2)' : '';
    return [
      `${path} is ${length.units} characters when rendered; one SMS segment allows ${GSM7_SEGMENT_LIMIT}${doubled}`,
    ];
  }
  const wide = Array.from(rendered).find((char) => !isGsm7(char)) ?? '';
  return [
    `${path} is ${length.units} characters when rendered; one SMS segment allows ${UCS2_SEGMENT_LIMIT} in UCS-2, which "${wide}" needs (${GSM7_SEGMENT_LIMIT} in GSM-7)`,
  ];
}

export function isTemplateKey(key: string): key is TemplateKey {
  return (TEMPLATE_KEYS as readonly string[]).includes(key);
}

/** The template that replaces the text of this kind (and unclaimed pickup step). */
export function templateKey(kind: NotificationKind, step: 1 | 2 | 3 = 1): TemplateKey {
  return kind === 'unclaimed_pickup' ? (`unclaimed_pickup_${step}` as const) : kind;
}

const PLACEHOLDER = /\{([^{}]*)\}/g;

/** C0 and C1 control characters (and DEL), except those listed in `allowed`. */
export function hasControlCharacter(text: string, allowed = ''): boolean {
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0;
    if ((code < 0x20 || (code >= 0x7f && code <= 0x9f)) && !allowed.includes(char)) return true;
  }
  return false;
}

function templateTextProblems(key: TemplateKey, language: Language, text: string, path: string): string[] {
  const problems: string[] = [];
  if (hasControlCharacter(text, '\n')) {
    problems.push(`${path} must not contain control characters (a line break is allowed)`);
  }
  if (hasLoneSurrogate(text)) problems.push(`${path} ${LONE_SURROGATE_PROBLEM}`);
  const used = new Set<string>();
  for (const match of text.matchAll(PLACEHOLDER)) used.add(match[1]);
  for (const placeholder of used) {
    if (placeholder === 'drug') {
      problems.push(
        `${path} uses {drug}, which a template may not: only the built-in texts name the drug, for patients who opted in to detailed messages`,
      );
    } else if (!(TEMPLATE_PLACEHOLDERS as readonly string[]).includes(placeholder)) {
      problems.push(`${path} uses unknown placeholder {${placeholder}}`);
    } else if (placeholder === 'date' && key !== 'unclaimed_pickup_3') {
      problems.push(`${path} uses {date}, which only unclaimed_pickup_3 may use`);
    }
  }
  if (/[{}]/.test(text.replace(PLACEHOLDER, ''))) {
    problems.push(`${path} has a { or } that is not part of a placeholder`);
  }
  if (!used.has('pharmacy')) problems.push(`${path} must name the pharmacy with {pharmacy}`);
  if (key === 'unclaimed_pickup_3' && !used.has('date')) {
    problems.push(`${path} must give the return-to-stock date with {date}`);
  }
  if (!text.endsWith(OPT_OUT_LINE[language])) {
    problems.push(`${path} must end with the opt-out line "${OPT_OUT_LINE[language]}"`);
  }
  return problems;
}

type PlaceholderValues = Record<(typeof TEMPLATE_PLACEHOLDERS)[number], string>;

/** Substitutes in one pass, so a value that looks like a placeholder stays as it is. */
function fillTemplate(text: string, values: PlaceholderValues): string {
  return text.replace(PLACEHOLDER, (whole, placeholder: string) =>
    Object.prototype.hasOwnProperty.call(values, placeholder)
      ? values[placeholder as keyof PlaceholderValues]
      : whole,
  );
}

/** The pharmacy's template filled in, or undefined when it has none here, or one that is invalid or too long. */
function renderOverride(
  key: TemplateKey,
  language: Language,
  context: Context,
  name: string,
  overrides: PharmacyTemplates | undefined,
): string | undefined {
  // Settings come from a JSON column: nothing about their shape is taken for granted.
  const texts: unknown = isRecord(overrides) ? overrides[key] : undefined;
  const text: unknown = isRecord(texts) ? texts[language] : undefined;
  if (typeof text !== 'string' || templateTextProblems(key, language, text, key).length > 0) return undefined;
  const filled = fillTemplate(text, {
    pharmacy: name,
    phone: context.phone,
    count: String(context.n),
    date: context.date,
  });
  return smsLength(filled).fitsOneSegment ? filled : undefined;
}

/**
 * The text naming the drug. The drug name is cut only as far as needed: with the whole pharmacy name, the
 * longest cut of the drug name that fits in any variant, in the fullest such variant; else the same with the
 * pharmacy name cut (keeping at least MIN_NAME_IN_FULL_VARIANT characters); else undefined (the generic text
 * goes out). The strength ("10 mg") tells two prescriptions of one drug apart, so it outranks wording.
 */
function renderDetailed(
  kind: NotificationKind,
  language: Language,
  context: Context,
  name: string,
  drug: string,
): string | undefined {
  const optOut = OPT_OUT_LINE[language];
  const variants = DETAILED_SMS_BODIES[language][kind];
  const drugs = drugNameCuts(drug);
  const composers = drugs.map((d) =>
    variants(context, d).map((body) => (shown: string) => `${shown}: ${body} ${optOut}`),
  );
  for (const compose of composers.flat()) {
    const text = compose(name);
    if (smsLength(text).fitsOneSegment) return text;
  }
  const graphemes = splitGraphemes(name);
  if (graphemes.length <= MIN_NAME_IN_FULL_VARIANT || !isGsm7(name)) return undefined;
  for (const compose of composers.flat()) {
    // GSM-7 throughout (the drug is transliterated): the room left for the name is what the rest leaves.
    let room = GSM7_SEGMENT_LIMIT - smsLength(compose('')).units;
    const kept: string[] = [];
    for (const grapheme of graphemes) {
      room -= smsLength(grapheme).units;
      if (room < 0) break;
      kept.push(grapheme);
    }
    if (kept.length < MIN_NAME_IN_FULL_VARIANT) continue;
    const shortName = tidyCut(graphemes, kept);
    if (splitGraphemes(shortName).length >= MIN_NAME_IN_FULL_VARIANT) return compose(shortName);
  }
  return undefined;
}

/**
 * The drug name as a text shows it: transliterated to GSM-7 like a pharmacy name, whitespace collapsed,
 * without a trailing full stop; undefined when no letter survives.
 */
function smsDrugName(drugName: string): string | undefined {
  const drug = collapseWhitespace(toGsm7(collapseWhitespace(drugName))).replace(/[\s.,;:]+$/, '');
  return /\p{L}/u.test(drug) ? drug : undefined;
}

/** Words a cut drug name must not end on ("Amlodipine and"). */
const DANGLING_WORDS = new Set(
  'a an and con de del el en for in la o of or para plus the w with y'.split(' '),
);

/**
 * The drug name and its cuts at word boundaries, longest first, down to its first word. A cut ends on a
 * letter or a closing parenthesis, so never on a bare strength ("Lisinopril 10" would misstate "Lisinopril
 * 10 mg", as would "5 mg/20"), joining punctuation, a word such as "and", or inside parentheses.
 */
function drugNameCuts(drug: string): string[] {
  const words: string[] = [];
  let length = -1;
  for (const word of drug.split(' ')) {
    length += word.length + 1;
    if (length > GSM7_SEGMENT_LIMIT) break;
    words.push(word);
  }
  const cuts = new Set<string>();
  if (words.length === drug.split(' ').length) cuts.add(drug);
  for (let k = words.length; k >= 1; k -= 1) {
    const cut = words.slice(0, k).join(' ');
    const last = (words[k - 1] ?? '').toLowerCase();
    const open = (cut.match(/\(/g) ?? []).length > (cut.match(/\)/g) ?? []).length;
    if (/[\p{L})]$/u.test(cut) && !DANGLING_WORDS.has(last) && !open) cuts.add(cut);
  }
  return [...cuts];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function renderConfirmation(
  kind: 'opt_out' | 'opt_in' | 'help',
  language: Language,
  vars: ConfirmationVars,
): string {
  // Only HELP shows the phone: an opt-out confirmation must go out even if it is misconfigured.
  const phone = kind === 'help' ? smsPhone(vars.callbackPhone) : '';
  return fitOneSegment(smsPharmacyName(vars.pharmacyName), CONFIRMATIONS[language][kind](phone));
}

/** The spoken message of an automated call, before the "press 9" menu; under 60 words. */
export function renderVoice(kind: NotificationKind, language: Language, vars: TemplateVars): string {
  const context = voiceContext(kind, vars);
  const script = VOICE[language];
  const generic = script.kinds[kind](context);
  const drug = context.one && vars.drugName !== undefined ? voiceDrugName(vars.drugName) : undefined;
  const message = drug === undefined ? generic.message : DETAILED_VOICE[language][kind](context, drug);
  return `${script.intro(voiceName(vars.pharmacyName))} ${message} ${generic.callToAction}`;
}

function baseContext(kind: NotificationKind, vars: TemplateVars, clean: (text: string) => string): Context {
  const n = vars.count ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > MAX_COUNT) {
    throw new RangeError(`count must be an integer from 1 to ${MAX_COUNT}`);
  }
  const step = vars.step ?? 1;
  if (step !== 1 && step !== 2 && step !== 3) throw new RangeError('step must be 1, 2 or 3');
  let date = '';
  if (kind === 'unclaimed_pickup' && step === 3) {
    date = clean(vars.returnToStockDate ?? '');
    if (date === '') throw new RangeError('returnToStockDate is required for unclaimed pickup step 3');
    if (date.length > MAX_RETURN_TO_STOCK_DATE_LENGTH) {
      throw new RangeError(`returnToStockDate is longer than ${MAX_RETURN_TO_STOCK_DATE_LENGTH} characters`);
    }
  }
  return { n, one: n === 1, step, phone: '', date };
}

function smsContext(kind: NotificationKind, vars: TemplateVars): Context {
  const gsm = (text: string) => collapseWhitespace(toGsm7(collapseWhitespace(text)));
  return { ...baseContext(kind, vars, gsm), phone: smsPhone(vars.callbackPhone) };
}

function voiceContext(kind: NotificationKind, vars: TemplateVars): Context {
  const phone = collapseWhitespace(vars.callbackPhone);
  if (phone === '') throw new RangeError('callbackPhone is empty');
  return { ...baseContext(kind, vars, collapseWhitespace), phone: spokenPhone(phone) };
}

function smsPhone(callbackPhone: string): string {
  const phone = collapseWhitespace(toGsm7(collapseWhitespace(callbackPhone)));
  if (phone === '') throw new RangeError('callbackPhone is empty');
  if (phone.length > MAX_CALLBACK_PHONE_LENGTH) {
    throw new RangeError(`callbackPhone is longer than ${MAX_CALLBACK_PHONE_LENGTH} characters (E.164)`);
  }
  return phone;
}

/** Digits read one by one, grouped like a North American number, so text-to-speech does not read one huge number. */
function spokenPhone(phone: string): string {
  let digits = phone.replace(/\D/g, '');
  if (digits.length === 11 && digits.startsWith('1')) digits = digits.slice(1);
  if (digits.length === 0) return phone;
  const groups =
    digits.length === 10
      ? [digits.slice(0, 3), digits.slice(3, 6), digits.slice(6)]
      : (digits.match(/.{1,3}/g) ?? []);
  return groups.map((group) => group.split('').join(' ')).join(', ');
}

/**
 * The drug as spoken: its longest cut (as in texts) of at most MAX_VOICE_DRUG_WORDS words and
 * MAX_VOICE_DRUG_LENGTH characters, so a call stays under a minute; undefined when none.
 */
function voiceDrugName(drugName: string): string | undefined {
  const drug = collapseWhitespace(drugName).replace(/[\s.,;:]+$/, '');
  if (!/\p{L}/u.test(drug)) return undefined;
  return drugNameCuts(drug).find(
    (cut) => cut.split(' ').length <= MAX_VOICE_DRUG_WORDS && cut.length <= MAX_VOICE_DRUG_LENGTH,
  );
}

function voiceName(pharmacyName: string): string {
  const name = collapseWhitespace(pharmacyName);
  if (name === '') throw new RangeError('pharmacyName is empty');
  const words = name.split(' ');
  let short = words.slice(0, MAX_VOICE_NAME_WORDS).join(' ');
  if (short.length > MAX_VOICE_NAME_LENGTH) {
    // Never half of a surrogate pair (an emoji cut in two).
    const cut = short.slice(0, MAX_VOICE_NAME_LENGTH).replace(/[\uD800-\uDBFF]$/, '');
    const space = cut.lastIndexOf(' ');
    short = space > 0 ? cut.slice(0, space) : cut;
  }
  return short;
}

/**
 * The first variant that fits with the whole name; else the first that fits with at least
 * MIN_NAME_IN_FULL_VARIANT characters of it once cut; else the last with as much of the name as fits.
 */
function fitOneSegment(name: string, variants: readonly Compose[]): string {
  for (const compose of variants) {
    const text = compose(name);
    if (smsLength(text).fitsOneSegment) return text;
  }
  const graphemes = splitGraphemes(name);
  for (const [index, compose] of variants.entries()) {
    const last = index === variants.length - 1;
    const kept = longestFittingPrefix(graphemes, compose);
    if (kept === undefined) continue;
    const shortName = tidyCut(graphemes, kept);
    if (last || splitGraphemes(shortName).length >= MIN_NAME_IN_FULL_VARIANT) return compose(shortName);
  }
  throw new Error('no message variant fits one segment');
}

/** The longest prefix (in graphemes) with which `compose` fits one segment. */
function longestFittingPrefix(graphemes: readonly string[], compose: Compose): string[] | undefined {
  for (let k = Math.min(graphemes.length, GSM7_SEGMENT_LIMIT); k >= 1; k -= 1) {
    const prefix = graphemes.slice(0, k);
    if (smsLength(compose(prefix.join(''))).fitsOneSegment) return prefix;
  }
  // A single grapheme too big for the room left (an emoji sequence): keep its first code point.
  const first = Array.from(graphemes[0] ?? '')[0];
  if (first !== undefined && smsLength(compose(first)).fitsOneSegment) return [first];
  return undefined;
}

/**
 * The kept prefix moved back to its last word boundary when that keeps at least half of it, without
 * trailing spaces or joining punctuation. Only ever shorter, so it still fits.
 */
function tidyCut(graphemes: readonly string[], kept: readonly string[]): string {
  const k = kept.length;
  if (k >= graphemes.length || kept[k - 1] !== graphemes[k - 1]) return kept.join('');
  let end = k;
  if (graphemes[k] !== ' ') {
    const space = kept.lastIndexOf(' ');
    if (space >= Math.ceil(k / 2)) end = space;
  }
  while (end > 1 && /^[\s\-&,/:;+'"(]$/.test(kept[end - 1] ?? '')) end -= 1;
  return kept.slice(0, end).join('');
}

const graphemeSegmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

function splitGraphemes(text: string): string[] {
  return Array.from(graphemeSegmenter.segment(text), (segment) => segment.segment);
}

/** Control characters and whitespace runs become single spaces; the ends are trimmed. */
function collapseWhitespace(text: string): string {
  let out = '';
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0;
    out += code < 0x20 || (code >= 0x7f && code <= 0x9f) ? ' ' : char;
  }
  return out.replace(/\s+/g, ' ').trim();
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
