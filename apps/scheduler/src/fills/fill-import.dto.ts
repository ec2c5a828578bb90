import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { FILL_COLUMNS } from './fills-csv';
import type { ImportOutcome } from './fills-import.service';

export const CSV_EXAMPLE = [
  FILL_COLUMNS.join(','),
  '3f1c9a52-5d0e-4b8e-9a57-2f0c5a1e7d10,F-1001,P-77,RX100,0,Lisinopril 10 mg,00093-7339-01,30,30,3,2025-01-15T14:00:00Z,ready,2025-01-15T15:00:00Z,,yes,ACE inhibitor',
  '3f1c9a52-5d0e-4b8e-9a57-2f0c5a1e7d10,F-1002,P-77,RX101,1,"Metformin 500 mg, ER",,60,thirty,2,2025-01-15T14:05:00Z,in_progress,,,true,',
].join('\n');

class FillImportResultDto {
  @ApiProperty({
    type: String,
    nullable: true,
    description: 'null when the record has no readable externalId.',
  })
  externalId!: string | null;
  @ApiPropertyOptional({ format: 'uuid', description: 'The fill, when created or updated.' })
  id?: string;
  @ApiProperty({ enum: ['created', 'updated', 'rejected'] })
  outcome!: string;
  @ApiPropertyOptional({ type: [String], description: 'Why the record was rejected, each naming its field.' })
  errors?: string[];
  @ApiProperty({ description: 'The line of the file where the record starts; the header is line 1.' })
  line!: number;
}

export class FillImportResultsDto {
  @ApiProperty({
    type: [FillImportResultDto],
    description: 'One result per data record, in file order.',
    example: [
      { externalId: 'F-1001', id: '7b0c5e1a-2d4f-4a51-9c3e-0f6d2b8a9e17', outcome: 'created', line: 2 },
      {
        externalId: 'F-1002',
        outcome: 'rejected',
        errors: ['daysSupply must be an integer number'],
        line: 3,
      },
      {
        externalId: null,
        outcome: 'rejected',
        errors: [
          'malformed CSV: a quoted field in column "drugName" is never closed (unclosed quote); nothing after this point was read',
        ],
        line: 4,
      },
    ],
  })
  results!: ImportOutcome[];
}
