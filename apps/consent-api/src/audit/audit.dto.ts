import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsISO8601, IsOptional, IsUUID } from 'class-validator';

export class AccessQueryDto {
  @ApiPropertyOptional({ format: 'uuid' })
  @IsOptional()
  @IsUUID()
  patientId?: string;

  @ApiPropertyOptional({ format: 'date-time', example: '2026-01-01T00:00:00Z', description: 'inclusive' })
  @IsOptional()
  @IsISO8601({ strict: true })
  from?: string;

  @ApiPropertyOptional({ format: 'date-time', example: '2026-02-01T00:00:00Z', description: 'inclusive' })
  @IsOptional()
  @IsISO8601({ strict: true })
  to?: string;
}

export class AccessRecordView {
  @ApiProperty({ type: String, format: 'uuid', nullable: true })
  keyId!: string | null;
  @ApiProperty()
  role!: string;
  @ApiProperty({ type: String, format: 'uuid', nullable: true })
  pharmacyId!: string | null;
  @ApiProperty({ type: String, format: 'uuid', nullable: true })
  patientId!: string | null;
  @ApiProperty({ example: 'patient.read' })
  action!: string;
  @ApiProperty({ example: 'GET /v1/patients/4f0c…' })
  route!: string;
  @ApiProperty({ format: 'date-time' })
  at!: string;
}
