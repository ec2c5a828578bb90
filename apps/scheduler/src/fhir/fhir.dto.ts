import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import type { OperationOutcome } from 'fhir/r4';

export class FhirEntryResult {
  @ApiProperty({ description: 'The index of the entry in Bundle.entry.' }) entry!: number;
  @ApiProperty({ type: String, nullable: true, example: 'MedicationDispense' }) resourceType!: string | null;
  @ApiProperty({ type: String, nullable: true, description: 'The FHIR resource id.', example: 'meddisp0301' })
  id!: string | null;
  @ApiProperty({ enum: ['created', 'updated', 'rejected'] }) outcome!: 'created' | 'updated' | 'rejected';
  @ApiPropertyOptional({ format: 'uuid', description: 'The fill, for a MedicationDispense.' })
  fillId?: string;
  @ApiPropertyOptional({ format: 'uuid', description: 'The patient, for a Patient.' }) patientId?: string;
  @ApiPropertyOptional({ type: [String], description: 'Why the entry was rejected, in sentences.' })
  errors?: string[];
}

export class FhirIngestResult {
  @ApiProperty({ type: [FhirEntryResult], description: 'One result per entry, in entry order.' })
  results!: FhirEntryResult[];

  @ApiProperty({
    description:
      'A FHIR OperationOutcome: one error issue per rejected entry, its expression naming the element ' +
      '(Bundle.entry[3].resource.daysSupply); a single information issue when every entry was accepted.',
    example: {
      resourceType: 'OperationOutcome',
      issue: [
        {
          severity: 'error',
          code: 'required',
          diagnostics: 'MedicationDispense.daysSupply is required to compute refill dates',
          expression: ['Bundle.entry[3].resource.daysSupply'],
        },
      ],
    },
  })
  operationOutcome!: OperationOutcome;
}
