import { Body, Controller, HttpCode, Param, ParseUUIDPipe, Post, Req } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBearerAuth,
  ApiBody,
  ApiConsumes,
  ApiOkResponse,
  ApiOperation,
  ApiPayloadTooLargeResponse,
  ApiTags,
  ApiUnprocessableEntityResponse,
  ApiUnsupportedMediaTypeResponse,
} from '@nestjs/swagger';
import type { Request } from 'express';
import { CurrentPrincipal, Roles } from '@rxnotify/common/auth/api-key.guard';
import type { Principal } from '@rxnotify/common/auth/api-keys';
import { AccessRoute } from '@rxnotify/common/http/params';
import { openCsvBody } from './csv-request';
import { FillBatchDto, FillResultsDto } from './fill.dto';
import { CSV_EXAMPLE, FillImportResultsDto } from './fill-import.dto';
import { FillsImportService, IMPORT_CHUNK_ROWS } from './fills-import.service';
import { FillsService } from './fills.service';

@ApiTags('fills')
@ApiBearerAuth()
@Controller('v1/fills')
export class FillsController {
  constructor(
    private readonly fills: FillsService,
    private readonly imports: FillsImportService,
  ) {}

  @Post()
  @HttpCode(200)
  @Roles('staff', 'integration')
  @ApiOkResponse({ type: FillResultsDto })
  async upsert(
    @Body() batch: FillBatchDto,
    @CurrentPrincipal() principal: Principal,
    @AccessRoute() route: string,
  ): Promise<FillResultsDto> {
    return { results: await this.fills.upsert(principal, batch.fills, route) };
  }

  @Post('import')
  @HttpCode(200)
  @Roles('staff', 'integration')
  @ApiOperation({
    summary: 'Upsert fills from a CSV file',
    description:
      "The header row names the columns: the JSON fill's fields, in any order; optional ones may be left out. An empty cell " +
      'is an absent field; `maintenance` reads true/false, yes/no or 1/0. Each record is validated alone, and a rejected ' +
      `one is reported with its line. Up to 32 MB. The file is applied in chunks of ${IMPORT_CHUNK_ROWS} records, each in ` +
      'one transaction: when the body turns out to be over the cap (413), the chunks applied before stay applied. A ' +
      'malformed record (e.g. an unclosed quote) ends the import: the records before it are applied and it is reported ' +
      'as rejected.',
  })
  @ApiConsumes('text/csv')
  @ApiBody({ schema: { type: 'string', example: CSV_EXAMPLE } })
  @ApiOkResponse({ type: FillImportResultsDto })
  @ApiPayloadTooLargeResponse({ description: 'The body is over 32 MB.' })
  @ApiUnsupportedMediaTypeResponse({ description: 'The body is not text/csv (or not UTF-8).' })
  @ApiUnprocessableEntityResponse({
    description: 'The header row names an unknown column, or misses a required one.',
  })
  async importCsv(
    @Req() req: Request,
    @CurrentPrincipal() principal: Principal,
    @AccessRoute() route: string,
  ): Promise<FillImportResultsDto> {
    const body = openCsvBody(req);
    try {
      return { results: await this.imports.importCsv(principal, body.stream, route) };
    } catch (error) {
      throw body.httpError(error);
    } finally {
      body.release();
    }
  }

  @Post(':id/ready')
  @HttpCode(202)
  @Roles('staff')
  @ApiAcceptedResponse({ description: 'The ready notification (the same one on every click).' })
  markReady(
    @Param('id', ParseUUIDPipe) id: string,
    @CurrentPrincipal() principal: Principal,
    @AccessRoute() route: string,
  ) {
    return this.fills.markReady(principal, id, route);
  }

  @Post(':id/pickup')
  @HttpCode(200)
  @Roles('staff')
  markPickedUp(
    @Param('id', ParseUUIDPipe) id: string,
    @CurrentPrincipal() principal: Principal,
    @AccessRoute() route: string,
  ) {
    return this.fills.markPickedUp(principal, id, route);
  }
}
