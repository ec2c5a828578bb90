import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { canReach, type Principal } from '@rxnotify/common/auth/api-keys';
import { ConflictError, InvalidInputError, NotFoundError } from '@rxnotify/common/errors';
import type { TemplateContext } from '@rxnotify/common/messaging';
import {
  mergeSettingsOverrides,
  validatePharmacySettings,
  type PharmacySettingsOverrides,
} from '@rxnotify/common/pharmacy/pharmacy-settings';
import { DataSource, type EntityManager } from 'typeorm';
import { requireE164 } from '../shared/http';
import { canonicalTimeZone } from '../shared/validators';
import type { CreatePharmacyDto, PharmacyView, UpdatePharmacyDto } from './pharmacy.dto';

interface PharmacyRow {
  id: string;
  name: string;
  timezone: string;
  sms_from: string;
  voice_from: string | null;
  callback_phone: string;
  settings: PharmacySettingsOverrides;
  created_at: Date;
  updated_at: Date;
}

interface PharmacyFields {
  name: string;
  timezone: string;
  smsFrom: string;
  voiceFrom: string | null;
  callbackPhone: string;
  settings: PharmacySettingsOverrides;
}

// Serialises changes to pharmacy numbers, so two pharmacies cannot claim one number at once.
const NUMBERS_LOCK = 7270101;

@Injectable()
export class PharmaciesService {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  async create(input: CreatePharmacyDto): Promise<PharmacyView> {
    const callbackPhone = requireE164(input.callbackPhone, 'callbackPhone');
    const fields: PharmacyFields = {
      name: input.name,
      timezone: timeZone(input.timezone),
      smsFrom: requireE164(input.smsFrom, 'smsFrom'),
      voiceFrom: input.voiceFrom ? requireE164(input.voiceFrom, 'voiceFrom') : null,
      callbackPhone,
      // Templates are checked against the name and phone they will be sent with.
      settings: settingsOrThrow(input.settings ?? {}, { pharmacyName: input.name, callbackPhone }),
    };
    return this.db.transaction(async (manager) => {
      await this.assertNumbersFree(manager, null, fields);
      const [row] = await manager.query<PharmacyRow[]>(
        `INSERT INTO pharmacies (name, timezone, sms_from, voice_from, callback_phone, settings)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
        [
          fields.name,
          fields.timezone,
          fields.smsFrom,
          fields.voiceFrom,
          fields.callbackPhone,
          fields.settings,
        ],
      );
      return toView(row);
    });
  }

  async update(principal: Principal, id: string, patch: UpdatePharmacyDto): Promise<PharmacyView> {
    return this.db.transaction(async (manager) => {
      const current = await this.load(manager, principal, id, true);
      const name = patch.name ?? current.name;
      const callbackPhone =
        patch.callbackPhone === undefined
          ? current.callback_phone
          : requireE164(patch.callbackPhone, 'callbackPhone');
      const pharmacy: TemplateContext = { pharmacyName: name, callbackPhone };
      const fields: PharmacyFields = {
        name,
        timezone: patch.timezone === undefined ? current.timezone : timeZone(patch.timezone),
        smsFrom: patch.smsFrom === undefined ? current.sms_from : requireE164(patch.smsFrom, 'smsFrom'),
        voiceFrom:
          patch.voiceFrom === undefined
            ? current.voice_from
            : patch.voiceFrom === null
              ? null
              : requireE164(patch.voiceFrom, 'voiceFrom'),
        callbackPhone,
        settings:
          patch.settings === undefined
            ? current.settings
            : settingsOrThrow(mergeSettingsOverrides(current.settings, patch.settings), pharmacy),
      };
      // A new name or phone must not make a stored template overflow its segment.
      if (patch.settings === undefined && current.settings.templates !== undefined) {
        settingsOrThrow({ templates: current.settings.templates }, pharmacy);
      }
      await this.assertNumbersFree(manager, id, fields);
      const [row] = await manager.query<PharmacyRow[]>(
        // Wrapped in a SELECT: TypeORM answers a bare UPDATE with [rows, count] rather than rows.
        `WITH updated AS (
           UPDATE pharmacies SET name = $2, timezone = $3, sms_from = $4, voice_from = $5, callback_phone = $6,
             settings = $7, updated_at = now()
           WHERE id = $1 RETURNING *
         )
         SELECT * FROM updated`,
        [
          id,
          fields.name,
          fields.timezone,
          fields.smsFrom,
          fields.voiceFrom,
          fields.callbackPhone,
          fields.settings,
        ],
      );
      return toView(row);
    });
  }

  async get(principal: Principal, id: string): Promise<PharmacyView> {
    return toView(await this.load(this.db.manager, principal, id, false));
  }

  private async load(
    manager: EntityManager,
    principal: Principal,
    id: string,
    forUpdate: boolean,
  ): Promise<PharmacyRow> {
    const [row] = await manager.query<PharmacyRow[]>(
      `SELECT * FROM pharmacies WHERE id = $1 ${forUpdate ? 'FOR UPDATE' : ''}`,
      [id],
    );
    if (!row || !canReach(principal, row.id)) throw new NotFoundError('pharmacy');
    return row;
  }

  /**
   * Inbound texts and keypresses find their pharmacy by the number they reached, so a number may
   * belong to one pharmacy only; otherwise a STOP could not be attributed.
   */
  private async assertNumbersFree(
    manager: EntityManager,
    id: string | null,
    fields: PharmacyFields,
  ): Promise<void> {
    await manager.query(`SELECT pg_advisory_xact_lock($1)`, [NUMBERS_LOCK]);
    const numbers = { smsFrom: fields.smsFrom, voiceFrom: fields.voiceFrom };
    const taken = await manager.query<{ number: string }[]>(
      `SELECT n AS number FROM unnest($2::text[]) AS n
       WHERE EXISTS (SELECT 1 FROM pharmacies p WHERE p.id IS DISTINCT FROM $1::uuid AND (p.sms_from = n OR p.voice_from = n))`,
      [id, Object.values(numbers).filter((n): n is string => n !== null)],
    );
    const clashes = Object.entries(numbers)
      .filter(([, number]) => taken.some((t) => t.number === number))
      .map(([field]) => field);
    if (clashes.length > 0) {
      throw new ConflictError(`${clashes.join(' and ')}: the number already belongs to another pharmacy`);
    }
  }
}

function timeZone(value: string): string {
  const canonical = canonicalTimeZone(value);
  if (!canonical)
    throw new InvalidInputError(['timezone must be an IANA time zone, such as America/New_York']);
  return canonical;
}

function settingsOrThrow(input: unknown, pharmacy: TemplateContext): PharmacySettingsOverrides {
  const { overrides, problems } = validatePharmacySettings(input, 'settings', pharmacy);
  if (problems.length > 0) throw new InvalidInputError(problems);
  return overrides;
}

function toView(row: PharmacyRow): PharmacyView {
  return {
    id: row.id,
    name: row.name,
    timezone: row.timezone,
    smsFrom: row.sms_from,
    voiceFrom: row.voice_from,
    callbackPhone: row.callback_phone,
    settings: row.settings,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}
