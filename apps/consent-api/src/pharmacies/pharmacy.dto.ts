import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import type { PharmacySettingsOverrides } from '@rxnotify/common/pharmacy/pharmacy-settings';
import { IsObject, IsOptional } from 'class-validator';
import { IsOmittable, IsPhone, IsPlainText, IsTimeZone } from '../shared/validators';

// The settings classes document the shape for OpenAPI. The object itself is validated by
// validatePharmacySettings (libs/common), whose messages name the full path: `settings.quietHours.start`.
class QuietHoursDto {
  @ApiProperty({ example: '09:00', description: 'start of the sending window, HH:MM local time' })
  start!: string;
  @ApiProperty({ example: '20:00', description: 'end of the sending window, HH:MM, later than start' })
  end!: string;
}

class ReminderCapsDto {
  @ApiProperty({ minimum: 0, maximum: 10, example: 1 })
  perDay!: number;
  @ApiProperty({ minimum: 0, maximum: 50, example: 3 })
  perWeek!: number;
}

const TEMPLATE_TEXT_DOC = {
  description:
    'SMS text; placeholders {pharmacy} (required), {phone}, {count}, and {date} in unclaimed_pickup_3 only (required there); ' +
    'must end with the opt-out line and fit one segment when filled in; null removes it',
};

class TemplateTextsDto {
  @ApiPropertyOptional({
    ...TEMPLATE_TEXT_DOC,
    example: '{pharmacy}: Your order is ready at the counter. Questions? {phone}. Reply STOP to opt out.',
  })
  en?: string;
  @ApiPropertyOptional({
    ...TEMPLATE_TEXT_DOC,
    example: '{pharmacy}: Su pedido ya se puede recoger. Llame al {phone}. Responda ALTO para cancelar.',
  })
  es?: string;
}

/** One entry per built-in text; unclaimed pickup has one per reminder step. */
class PharmacyTemplatesDto {
  @ApiPropertyOptional({ type: TemplateTextsDto })
  ready?: TemplateTextsDto;
  @ApiPropertyOptional({ type: TemplateTextsDto })
  refill_due?: TemplateTextsDto;
  @ApiPropertyOptional({ type: TemplateTextsDto })
  renewal_needed?: TemplateTextsDto;
  @ApiPropertyOptional({ type: TemplateTextsDto })
  unclaimed_pickup_1?: TemplateTextsDto;
  @ApiPropertyOptional({ type: TemplateTextsDto })
  unclaimed_pickup_2?: TemplateTextsDto;
  @ApiPropertyOptional({ type: TemplateTextsDto, description: 'may use {date}, the return-to-stock date' })
  unclaimed_pickup_3?: TemplateTextsDto;
  @ApiPropertyOptional({ type: TemplateTextsDto })
  adherence_gap?: TemplateTextsDto;
}

export class PharmacySettingsDto {
  @ApiPropertyOptional({ type: QuietHoursDto })
  quietHours?: QuietHoursDto;
  @ApiPropertyOptional({ minimum: 0, maximum: 3600, example: 60 })
  readyCoalesceSeconds?: number;
  @ApiPropertyOptional({
    minimum: 0,
    maximum: 30,
    nullable: true,
    description: 'default: 5 for supplies up to 34 days, 7 for longer',
  })
  refillLeadDays?: number | null;
  @ApiPropertyOptional({
    type: [Number],
    example: [2, 5, 9],
    description: '1 to 5 days from 1 to 30, ascending',
  })
  pickupReminderDays?: number[];
  @ApiPropertyOptional({
    minimum: 1,
    maximum: 60,
    example: 10,
    description: 'after the last pickup reminder day',
  })
  returnToStockDay?: number;
  @ApiPropertyOptional({ minimum: 0, maximum: 60, example: 7 })
  adherenceGraceDays?: number;
  @ApiPropertyOptional({ minimum: 1, maximum: 1000, example: 10 })
  sendRatePerSecond?: number;
  @ApiPropertyOptional({ type: ReminderCapsDto })
  reminderCaps?: ReminderCapsDto;
  @ApiPropertyOptional({
    type: PharmacyTemplatesDto,
    description:
      "the pharmacy's own SMS wording per text and language, instead of the built-in one; merged key by key and language by language on PATCH",
  })
  templates?: PharmacyTemplatesDto;
}

const SETTINGS_DOC = {
  type: PharmacySettingsDto,
  description: 'overrides of the delivery defaults; a key set to null returns to its default',
};

export class CreatePharmacyDto {
  @ApiProperty({ example: 'Main Street Pharmacy', maxLength: 200 })
  @IsPlainText(200)
  name!: string;

  @ApiProperty({ example: 'America/New_York', description: 'IANA time zone' })
  @IsTimeZone()
  timezone!: string;

  @ApiProperty({ example: '+14155550100', description: 'the number texts come from; stored in E.164' })
  @IsPhone()
  smsFrom!: string;

  @ApiPropertyOptional({
    example: '+14155550101',
    nullable: true,
    description: 'the number calls come from, when it is not smsFrom',
  })
  @IsOptional()
  @IsPhone()
  voiceFrom?: string | null;

  @ApiProperty({ example: '+14155550199', description: 'the number patients are told to call' })
  @IsPhone()
  callbackPhone!: string;

  @ApiPropertyOptional(SETTINGS_DOC)
  @IsOptional()
  @IsObject()
  settings?: Record<string, unknown>;
}

/** Every field may be left out; `voiceFrom: null` removes the voice number. */
export class UpdatePharmacyDto {
  @ApiPropertyOptional({ maxLength: 200 })
  @IsOmittable()
  @IsPlainText(200)
  name?: string;

  @ApiPropertyOptional({ example: 'America/Chicago' })
  @IsOmittable()
  @IsTimeZone()
  timezone?: string;

  @ApiPropertyOptional()
  @IsOmittable()
  @IsPhone()
  smsFrom?: string;

  @ApiPropertyOptional({ nullable: true })
  @IsOptional()
  @IsPhone()
  voiceFrom?: string | null;

  @ApiPropertyOptional()
  @IsOmittable()
  @IsPhone()
  callbackPhone?: string;

  @ApiPropertyOptional({
    ...SETTINGS_DOC,
    description: 'merged into the stored overrides key by key; a key set to null returns to its default',
  })
  @IsOmittable()
  @IsObject()
  settings?: Record<string, unknown>;
}

export class PharmacyView {
  @ApiProperty({ format: 'uuid' })
  id!: string;
  @ApiProperty()
  name!: string;
  @ApiProperty()
  timezone!: string;
  @ApiProperty()
  smsFrom!: string;
  @ApiProperty({ type: String, nullable: true })
  voiceFrom!: string | null;
  @ApiProperty()
  callbackPhone!: string;
  @ApiProperty({
    type: PharmacySettingsDto,
    description: 'the overrides stored; anything absent takes its default',
  })
  settings!: PharmacySettingsOverrides;
  @ApiProperty({ format: 'date-time' })
  createdAt!: string;
  @ApiProperty({ format: 'date-time' })
  updatedAt!: string;
}
