import { ApiProperty } from '@nestjs/swagger';

export class TherapyAdherenceView {
  @ApiProperty({ example: 'Statins', description: "the fill's therapeutic class, else its drug name" })
  therapy!: string;

  @ApiProperty({
    example: 0.8824,
    minimum: 0,
    maximum: 1,
    description: 'proportion of days covered (PQA), 4 decimals',
  })
  pdc!: number;

  @ApiProperty({ example: 7, description: 'days since the supply ran out; 0 while covered' })
  daysLate!: number;

  @ApiProperty({ description: 'pdc below 0.80' })
  atRisk!: boolean;

  @ApiProperty({ example: 60 })
  daysCovered!: number;

  @ApiProperty({
    example: 68,
    description: 'from the first fill inside the 365-day window to today, both included',
  })
  daysInPeriod!: number;

  @ApiProperty({ format: 'date', example: '2026-01-01' })
  firstFillDate!: string;

  @ApiProperty({
    format: 'date',
    example: '2026-03-02',
    description: 'the first day without supply; may be after today',
  })
  lastRunOutDate!: string;
}

export class AdherenceView {
  @ApiProperty({ format: 'uuid' })
  patientId!: string;

  @ApiProperty({
    format: 'date',
    example: '2026-03-09',
    description: "today in the patient's time zone, else the pharmacy's",
  })
  asOf!: string;

  @ApiProperty({
    type: [TherapyAdherenceView],
    description: 'maintenance therapies with a pickup in the window, by therapy',
  })
  therapies!: TherapyAdherenceView[];
}
