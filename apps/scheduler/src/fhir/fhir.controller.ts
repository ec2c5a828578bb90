import { Body, Controller, HttpCode, Post, Query } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiConsumes,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiPayloadTooLargeResponse,
  ApiQuery,
  ApiTags,
  ApiUnprocessableEntityResponse,
} from '@nestjs/swagger';
import { CurrentPrincipal, Roles } from '@rxnotify/common/auth/api-key.guard';
import type { Principal } from '@rxnotify/common/auth/api-keys';
import { AccessRoute } from '@rxnotify/common/http/params';
import { FhirIngestResult } from './fhir.dto';
import { FhirService } from './fhir.service';

@ApiTags('fhir')
@ApiBearerAuth()
@Controller('fhir/r4')
export class FhirController {
  constructor(private readonly fhir: FhirService) {}

  @Post()
  @HttpCode(200)
  @Roles('integration')
  @ApiOperation({
    summary: 'Ingest a FHIR R4 Bundle of Patient and MedicationDispense resources',
    description:
      'A collection, batch or transaction Bundle, applied entry by entry (a transaction is not atomic here): one bad ' +
      'entry never rejects the others. Patients are applied first, so dispenses may name them. MedicationDispense.status ' +
      'in-progress is a ready fill, completed picked up, cancelled returned to stock, preparation in progress; other ' +
      'statuses are rejected. Other resource types are rejected as not-supported (MedicationRequest entries are still ' +
      'read for the refills remaining of the dispenses that name them). Up to 32 MB and 10,000 entries.',
  })
  @ApiConsumes('application/fhir+json', 'application/json')
  @ApiBody({
    schema: {
      type: 'object',
      example: {
        resourceType: 'Bundle',
        type: 'collection',
        entry: [{ resource: { resourceType: 'Patient' } }],
      },
    },
  })
  @ApiQuery({
    name: 'pharmacyId',
    required: false,
    description: 'Only for a key that is not bound to one pharmacy; then required.',
  })
  @ApiOkResponse({ type: FhirIngestResult })
  @ApiNotFoundResponse({ description: 'pharmacyId names a pharmacy this key does not reach.' })
  @ApiUnprocessableEntityResponse({
    description:
      'The body is not a collection, batch or transaction Bundle, or pharmacyId is missing or malformed.',
  })
  @ApiPayloadTooLargeResponse({ description: 'The body is over 32 MB.' })
  ingest(
    @Body() body: unknown,
    @Query('pharmacyId') pharmacyId: unknown,
    @CurrentPrincipal() principal: Principal,
    @AccessRoute() route: string,
  ): Promise<FhirIngestResult> {
    return this.fhir.ingest(principal, pharmacyId, body, route);
  }
}
