import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsBoolean,
  IsDateString,
  IsIn,
  IsInt,
  IsNumber,
  IsOptional,
  IsPositive,
  IsString,
  IsUUID,
  Length,
  Max,
  Min,
} from 'class-validator';

export const FILL_STATUSES = ['in_progress', 'ready', 'picked_up', 'returned_to_stock', 'cancelled'] as const;
export type FillStatus = (typeof FILL_STATUSES)[number];

/** One fill as the pharmacy management system sends it. Validated one by one: a bad fill never rejects its batch. */
export class FillDto {
  @ApiProperty({ format: 'uuid' }) @IsUUID() pharmacyId!: string;
  @ApiProperty() @IsString() @Length(1, 200) externalId!: string;
  @ApiProperty() @IsString() @Length(1, 200) patientExternalId!: string;
  @ApiProperty() @IsString() @Length(1, 100) rxNumber!: string;
  @ApiProperty() @IsInt() @Min(0) @Max(1000) fillNumber!: number;
  @ApiProperty() @IsString() @Length(1, 300) drugName!: string;
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(1, 20) ndc?: string;
  @ApiProperty()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @IsPositive()
  @Max(1_000_000)
  quantity!: number;
  @ApiProperty({ minimum: 1, maximum: 365 }) @IsInt() @Min(1) @Max(365) daysSupply!: number;
  @ApiProperty({ minimum: 0 }) @IsInt() @Min(0) @Max(99) refillsRemaining!: number;
  @ApiProperty({ format: 'date-time' }) @IsDateString({ strict: true }) filledAt!: string;
  @ApiProperty({ enum: FILL_STATUSES }) @IsIn(FILL_STATUSES) status!: FillStatus;
  @ApiPropertyOptional({ format: 'date-time' })
  @IsOptional()
  @IsDateString({ strict: true })
  readyAt?: string;
  @ApiPropertyOptional({ format: 'date-time' })
  @IsOptional()
  @IsDateString({ strict: true })
  pickedUpAt?: string;
  @ApiPropertyOptional() @IsOptional() @IsBoolean() maintenance?: boolean;
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(1, 200) therapeuticClass?: string;
}

export class FillBatchDto {
  @ApiProperty({
    type: [FillDto],
    description: 'Up to 10,000 fills; each is validated and applied on its own.',
  })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(10_000)
  // Items are validated one by one in the service so that one bad fill is rejected alone.
  @Type(() => Object)
  fills!: unknown[];
}

export type FillOutcome =
  | { externalId: string | null; id: string; outcome: 'created' | 'updated' }
  | { externalId: string | null; outcome: 'rejected'; errors: string[] };

export class FillResultsDto {
  @ApiProperty({
    description: 'One result per input fill, in input order.',
    example: [
      { externalId: 'F-1', id: '7b0c…', outcome: 'created' },
      { externalId: 'F-2', outcome: 'rejected', errors: ['daysSupply must not be greater than 365'] },
    ],
  })
  results!: FillOutcome[];
}
