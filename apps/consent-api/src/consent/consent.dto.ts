import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, Length } from 'class-validator';
import { CHANNELS, type Channel } from '../shared/http';
import { IsPlainText } from '../shared/validators';

export const CONSENT_STATUSES = ['opted_in', 'opted_out'] as const;
export type ConsentStatus = (typeof CONSENT_STATUSES)[number];

export class SetConsentDto {
  @ApiProperty({ enum: CONSENT_STATUSES })
  @IsIn(CONSENT_STATUSES)
  status!: ConsentStatus;

  @ApiProperty({
    example: 'paper_form',
    maxLength: 100,
    description: 'how the consent or revocation was captured',
  })
  @IsPlainText(100)
  source!: string;

  @ApiPropertyOptional({ maxLength: 2000, description: 'free text, stored encrypted (it may hold PHI)' })
  @IsOptional()
  @IsString()
  @Length(1, 2000)
  evidence?: string | null;
}

export class ChannelConsentView {
  @ApiProperty({
    enum: [...CONSENT_STATUSES, 'unknown'],
    description: 'unknown until a first record; nothing is sent unless opted_in',
  })
  status!: ConsentStatus | 'unknown';
  @ApiProperty({ type: String, nullable: true })
  source!: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true })
  updatedAt!: string | null;
}

export class ConsentSummaryView {
  @ApiProperty({ type: ChannelConsentView })
  sms!: ChannelConsentView;
  @ApiProperty({ type: ChannelConsentView })
  voice!: ChannelConsentView;
}

export class ConsentChangeView {
  @ApiProperty({ enum: CHANNELS })
  channel!: Channel;
  @ApiProperty({ enum: CONSENT_STATUSES })
  status!: ConsentStatus;
  @ApiProperty()
  source!: string;
  @ApiProperty({ format: 'date-time' })
  updatedAt!: string;
}

export class ConsentEventView {
  @ApiProperty({ enum: CHANNELS })
  channel!: Channel;
  @ApiProperty({ enum: CONSENT_STATUSES })
  status!: ConsentStatus;
  @ApiProperty()
  source!: string;
  @ApiProperty({ type: String, nullable: true })
  evidence!: string | null;
  @ApiProperty({ format: 'date-time' })
  at!: string;
}

export class ConsentDetailView extends ConsentSummaryView {
  @ApiProperty({ type: [ConsentEventView], description: 'every change, oldest first' })
  history!: ConsentEventView[];
}
