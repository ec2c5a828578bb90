import {
  isTemplateKey,
  validateTemplate,
  type PharmacyTemplates,
  type TemplateContext,
} from '../messaging/templates';

/**
 * Per-pharmacy overrides of the delivery defaults (DESIGN.md, "Delivery policy"). A pharmacy row stores
 * only the overrides it was given (`pharmacies.settings`); readers call `resolveSettings` to get the
 * full picture, so a changed default reaches every pharmacy that did not override it.
 */
export interface PharmacySettings {
  /** The sending window in the patient's local time (else the pharmacy's): nothing goes out outside [start, end). */
  quietHours: { start: string; end: string };
  /** How long a ready notice is held so that several fills go out as one text; 0 sends at once. */
  readyCoalesceSeconds: number;
  /** Days before run-out to remind; null: 5 for supplies up to 34 days, 7 for longer (see `refillLeadDaysFor`). */
  refillLeadDays: number | null;
  /** Days after ready on which an unclaimed fill is chased, ascending. */
  pickupReminderDays: number[];
  /** Day after ready on which an unclaimed fill goes back to stock; after the last reminder day. */
  returnToStockDay: number;
  /** Days past run-out before a missed maintenance refill counts as an adherence gap. */
  adherenceGraceDays: number;
  sendRatePerSecond: number;
  /** Reminders (refill, renewal, unclaimed, adherence) per patient; ready notices are not capped. */
  reminderCaps: { perDay: number; perWeek: number };
  /**
   * The pharmacy's own SMS wording, per template (`ready`, ..., `unclaimed_pickup_1` to `_3`) and language;
   * absent ones use the built-in text. Placeholders and rules: `PharmacyTemplates` in messaging/templates.
   * Pass to `renderSms` as its `overrides`.
   */
  templates: PharmacyTemplates;
}

/** What a pharmacy may store: any subset of the settings. */
export type PharmacySettingsOverrides = Partial<PharmacySettings>;

export const DEFAULT_PHARMACY_SETTINGS: Readonly<PharmacySettings> = Object.freeze({
  quietHours: Object.freeze({ start: '09:00', end: '20:00' }),
  readyCoalesceSeconds: 60,
  refillLeadDays: null,
  pickupReminderDays: Object.freeze([2, 5, 9]) as number[],
  returnToStockDay: 10,
  adherenceGraceDays: 7,
  sendRatePerSecond: 10,
  reminderCaps: Object.freeze({ perDay: 1, perWeek: 3 }),
  templates: Object.freeze({}) as PharmacyTemplates,
});

/** The lead time for a refill reminder: the pharmacy's override, else 5 days for supplies up to 34 days, 7 for longer. */
export function refillLeadDaysFor(
  settings: Pick<PharmacySettings, 'refillLeadDays'>,
  daysSupply: number,
): number {
  return settings.refillLeadDays ?? (daysSupply <= 34 ? 5 : 7);
}

type Check<T> = (value: unknown, path: string, problems: string[]) => T | undefined;

const HH_MM = /^([01]\d|2[0-3]):[0-5]\d$/;

function integer(min: number, max: number): Check<number> {
  return (value, path, problems) => {
    if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
    problems.push(`${path} must be an integer from ${min} to ${max}`);
    return undefined;
  };
}

function object<T extends object>(fields: { [K in keyof T]: Check<T[K]> }): Check<T> {
  return (value, path, problems) => {
    if (!isPlainObject(value)) {
      problems.push(`${path} must be an object`);
      return undefined;
    }
    const before = problems.length;
    const known = Object.keys(fields);
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) problems.push(`${path}.${key} is not a known setting`);
    }
    const result: Record<string, unknown> = {};
    for (const key of known) {
      const field = value[key];
      if (field === undefined) problems.push(`${path}.${key} is required`);
      else result[key] = fields[key as keyof T](field, `${path}.${key}`, problems);
    }
    return problems.length === before ? (result as T) : undefined;
  };
}

const timeOfDay: Check<string> = (value, path, problems) => {
  if (typeof value === 'string' && HH_MM.test(value)) return value;
  problems.push(`${path} must be a time of day as HH:MM (24-hour)`);
  return undefined;
};

const quietHours: Check<PharmacySettings['quietHours']> = (value, path, problems) => {
  const window = object<PharmacySettings['quietHours']>({ start: timeOfDay, end: timeOfDay })(
    value,
    path,
    problems,
  );
  if (window && window.start >= window.end) {
    problems.push(`${path}.end must be later than ${path}.start (a window within one day)`);
    return undefined;
  }
  return window;
};

const reminderDays: Check<number[]> = (value, path, problems) => {
  const day = integer(1, 30);
  if (!Array.isArray(value) || value.length < 1 || value.length > 5) {
    problems.push(`${path} must be an array of 1 to 5 days`);
    return undefined;
  }
  const before = problems.length;
  const days = value.map((item, i) => day(item, `${path}.${i}`, problems));
  if (problems.length > before) return undefined;
  const valid = days as number[];
  if (valid.some((d, i) => i > 0 && d <= valid[i - 1])) {
    problems.push(`${path} must be in strictly ascending order`);
    return undefined;
  }
  return valid;
};

const FIELDS: { [K in keyof PharmacySettings]: Check<PharmacySettings[K]> } = {
  quietHours,
  readyCoalesceSeconds: integer(0, 3600),
  refillLeadDays: (value, path, problems) => (value === null ? null : integer(0, 30)(value, path, problems)),
  pickupReminderDays: reminderDays,
  returnToStockDay: integer(1, 60),
  adherenceGraceDays: integer(0, 60),
  sendRatePerSecond: integer(1, 1000),
  reminderCaps: (value, path, problems) => {
    const caps = object<PharmacySettings['reminderCaps']>({
      perDay: integer(0, 10),
      perWeek: integer(0, 50),
    })(value, path, problems);
    if (caps && caps.perDay > caps.perWeek) {
      problems.push(`${path}.perDay must not be more than ${path}.perWeek (a day is part of a week)`);
      return undefined;
    }
    return caps;
  },
  templates: (value, path, problems) => templates(value, path, problems, undefined),
};

/**
 * Templates as a client sends them: known keys and languages, each text valid (placeholders, opt-out line)
 * and, given the pharmacy, one segment at worst. Null removes a template or one language of it; what is
 * left empty is dropped.
 */
function templates(
  value: unknown,
  path: string,
  problems: string[],
  context: TemplateContext | undefined,
): PharmacyTemplates | undefined {
  if (!isPlainObject(value)) {
    problems.push(`${path} must be an object`);
    return undefined;
  }
  const before = problems.length;
  const result: Record<string, Record<string, string>> = {};
  for (const [key, texts] of Object.entries(value)) {
    if (!isTemplateKey(key)) {
      problems.push(`${path}.${key} is not a known template`);
      continue;
    }
    if (texts === null) continue;
    if (!isPlainObject(texts)) {
      problems.push(`${path}.${key} must be an object with en and/or es`);
      continue;
    }
    const kept: Record<string, string> = {};
    for (const [language, text] of Object.entries(texts)) {
      if (language !== 'en' && language !== 'es') {
        problems.push(`${path}.${key}.${language} is not a known language (en or es)`);
        continue;
      }
      if (text === null) continue;
      if (typeof text !== 'string') {
        problems.push(`${path}.${key}.${language} must be a string`);
        continue;
      }
      const found = validateTemplate(key, language, text, context, path);
      if (found.length > 0) problems.push(...found);
      else kept[language] = text;
    }
    if (Object.keys(kept).length > 0) result[key] = kept;
  }
  return problems.length === before ? (result as PharmacyTemplates) : undefined;
}

export interface SettingsValidation {
  overrides: PharmacySettingsOverrides;
  /** Each problem names its path (`settings.quietHours.start ...`); empty when the input is valid. */
  problems: string[];
}

/**
 * Validates overrides as a client sends them: known keys only, every value in range, and the
 * unclaimed-pickup schedule coherent once merged with the defaults. A key set to null is dropped
 * (its default applies), so a partial update can remove an override. Templates are checked against
 * `pharmacy` (its name and callback phone) to fit one segment; without it only their form is checked.
 */
export function validatePharmacySettings(
  input: unknown,
  path = 'settings',
  pharmacy?: TemplateContext,
): SettingsValidation {
  const problems: string[] = [];
  if (!isPlainObject(input)) return { overrides: {}, problems: [`${path} must be an object`] };
  const overrides: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(input)) {
    if (!isSettingKey(key)) {
      problems.push(`${path}.${key} is not a known setting`);
      continue;
    }
    if (value === null) continue; // null: no override, the default applies
    if (key === 'templates') {
      const checked = templates(value, `${path}.${key}`, problems, pharmacy);
      if (checked !== undefined && Object.keys(checked).length > 0) overrides[key] = checked;
      continue;
    }
    const checked = FIELDS[key](value, `${path}.${key}`, problems);
    if (checked !== undefined) overrides[key] = checked;
  }
  if (problems.length > 0) return { overrides: {}, problems };

  const typed = overrides as PharmacySettingsOverrides;
  const days = typed.pickupReminderDays ?? DEFAULT_PHARMACY_SETTINGS.pickupReminderDays;
  const returnDay = typed.returnToStockDay ?? DEFAULT_PHARMACY_SETTINGS.returnToStockDay;
  if (returnDay <= days[days.length - 1]) {
    problems.push(
      `${path}.returnToStockDay must be after the last of ${path}.pickupReminderDays (${days[days.length - 1]})`,
    );
  }
  return { overrides: problems.length > 0 ? {} : typed, problems };
}

/**
 * The effective settings of a pharmacy from its stored overrides. Tolerant by design: a stored value
 * that does not validate (written before a rule tightened, or by hand) falls back to its default.
 */
export function resolveSettings(stored: unknown): PharmacySettings {
  const resolved: PharmacySettings = {
    ...DEFAULT_PHARMACY_SETTINGS,
    quietHours: { ...DEFAULT_PHARMACY_SETTINGS.quietHours },
    pickupReminderDays: [...DEFAULT_PHARMACY_SETTINGS.pickupReminderDays],
    reminderCaps: { ...DEFAULT_PHARMACY_SETTINGS.reminderCaps },
  };
  if (!isPlainObject(stored)) return resolved;
  const target = resolved as unknown as Record<string, unknown>;
  for (const key of Object.keys(FIELDS)) {
    if (!isSettingKey(key) || !(key in stored) || key === 'templates') continue;
    const value = FIELDS[key](stored[key], key, []);
    if (value !== undefined) target[key] = value;
  }
  const lastReminder = resolved.pickupReminderDays[resolved.pickupReminderDays.length - 1];
  if (resolved.returnToStockDay <= lastReminder) resolved.returnToStockDay = lastReminder + 1;
  resolved.templates = resolveTemplates(stored.templates);
  return resolved;
}

/** Each stored template that is well-formed; one bad template does not take the others with it. */
function resolveTemplates(stored: unknown): PharmacyTemplates {
  const result: Record<string, Record<string, string>> = {};
  if (!isPlainObject(stored)) return result;
  for (const [key, texts] of Object.entries(stored)) {
    if (!isTemplateKey(key) || !isPlainObject(texts)) continue;
    for (const language of ['en', 'es'] as const) {
      const text = texts[language];
      if (typeof text === 'string' && validateTemplate(key, language, text).length === 0) {
        result[key] = { ...result[key], [language]: text };
      }
    }
  }
  return result;
}

/**
 * A PATCH's settings over the stored ones, to validate next: key by key, and templates key by key and
 * language by language, so `{templates: {ready: {es: null}}}` removes the Spanish ready text only. Nulls are
 * kept for `validatePharmacySettings` to drop.
 */
export function mergeSettingsOverrides(stored: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return patch;
  const base = isPlainObject(stored) ? stored : {};
  const merged: Record<string, unknown> = { ...base, ...patch };
  if (isPlainObject(patch.templates) && isPlainObject(base.templates)) {
    const templates: Record<string, unknown> = { ...base.templates };
    for (const [key, texts] of Object.entries(patch.templates)) {
      const current = base.templates[key];
      templates[key] = isPlainObject(texts) && isPlainObject(current) ? { ...current, ...texts } : texts;
    }
    merged.templates = templates;
  }
  return merged;
}

function isSettingKey(key: string): key is keyof PharmacySettings {
  return Object.prototype.hasOwnProperty.call(FIELDS, key);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
