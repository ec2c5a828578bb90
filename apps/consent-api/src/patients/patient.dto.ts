import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsIn, IsOptional, IsUUID } from 'class-validator';
import { ConsentSummaryView } from '../consent/consent.dto';
import { IsPhone, IsPlainText, IsTimeZone } from '../shared/validators';

export const LANGUAGES = ['en', 'es'] as const;
export type Language = (typeof LANGUAGES)[number];

/**
 * Upserted by (pharmacyId, externalId). On an update, an optional field left out keeps its stored value
 * (a PhMS that does not track language must not reset one staff set); null clears lastName or timezone.
 */
export class UpsertPatientDto {
  @ApiProperty({ format: 'uuid' })
  @IsUUID()
  pharmacyId!: string;

  @ApiProperty({
    example: 'PMS-10442',
    maxLength: 200,
    description: "the patient's id in the pharmacy system",
  })
  @IsPlainText(200)
  externalId!: string;

  @ApiProperty({ example: 'Ada', maxLength: 100 })
  @IsPlainText(100)
  firstName!: string;

  @ApiPropertyOptional({ type: String, example: 'Lovelace', maxLength: 100, nullable: true })
  @IsOptional()
  @IsPlainText(100)
  lastName?: string | null;

  @ApiProperty({
    example: '(415) 555-2671',
    description: 'any common form; US unless it has a country code; stored in E.164',
  })
  @IsPhone()
  phone!: string;

  @ApiPropertyOptional({ enum: LANGUAGES, description: 'default en' })
  @IsOptional()
  @IsIn(LANGUAGES)
  language?: Language | null;

  @ApiPropertyOptional({
    type: String,
    example: 'America/Chicago',
    nullable: true,
    description: "IANA time zone; absent: the pharmacy's",
  })
  @IsOptional()
  @IsTimeZone()
  timezone?: string | null;

  @ApiPropertyOptional({
    type: Boolean,
    description:
      'the patient opted in to messages naming the drug ("Your Lisinopril 10 mg is ready"); default false, left out: unchanged',
  })
  @IsOptional()
  @IsBoolean()
  detailedMessages?: boolean | null;
}

export class PatientView {
  @ApiProperty({ format: 'uuid' })
  id!: string;
  @ApiProperty({ format: 'uuid' })
  pharmacyId!: string;
  @ApiProperty()
  externalId!: string;
  @ApiProperty()
  firstName!: string;
  @ApiProperty({ type: String, nullable: true })
  lastName!: string | null;
  @ApiProperty({ description: 'E.164' })
  phone!: string;
  @ApiProperty({ enum: LANGUAGES })
  language!: Language;
  @ApiProperty({ type: String, nullable: true })
  timezone!: string | null;
  @ApiProperty({ description: 'texts and calls name the drug; otherwise only the pharmacy is named' })
  detailedMessages!: boolean;
  @ApiProperty({ type: ConsentSummaryView })
  consent!: ConsentSummaryView;
}
