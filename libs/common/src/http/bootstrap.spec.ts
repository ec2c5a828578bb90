import { Body, Controller, Get, HttpCode, Module, Post } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { IsOptional, IsString } from 'class-validator';
import request from 'supertest';
import { InvalidInputError, NotFoundError } from '../errors';
import { configureHttpApp } from './bootstrap';

class ProbeDto {
  @IsString()
  name!: string;

  @IsOptional()
  extra?: unknown;
}

@Controller()
class ProbeController {
  @Post('typed')
  @HttpCode(200)
  typed(@Body() body: ProbeDto) {
    return { name: body.name };
  }

  @Post('small')
  @HttpCode(200)
  small(@Body() body: unknown) {
    return { size: JSON.stringify(body).length };
  }

  @Post('big')
  @HttpCode(200)
  big(@Body() body: unknown) {
    return { size: JSON.stringify(body).length };
  }

  @Post('big/:id/ready')
  @HttpCode(200)
  belowBig(@Body() body: unknown) {
    return { size: JSON.stringify(body).length };
  }

  @Get('missing')
  missing() {
    throw new NotFoundError('patient');
  }

  @Get('invalid')
  invalid() {
    throw new InvalidInputError(['phone must be a valid phone number']);
  }

  @Get('db-down')
  dbDown() {
    throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
  }

  @Get('boom')
  boom() {
    throw new Error('secret internals: +14155552671');
  }
}

@Module({ controllers: [ProbeController] })
class ProbeModule {}

describe('the HTTP edge every app shares', () => {
  let http: ReturnType<import('@nestjs/common').INestApplication['getHttpServer']>;
  let close: () => Promise<void>;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({ imports: [ProbeModule] }).compile();
    const app = moduleRef.createNestApplication({ bodyParser: false, logger: false });
    configureHttpApp(app, { title: 't', description: 't', largeBodyRoutes: ['/big'] });
    await app.init();
    http = app.getHttpServer();
    close = () => app.close();
  });
  afterAll(() => close());

  const payload = (bytes: number) => ({ data: 'x'.repeat(bytes) });

  it('caps bodies at 1 MB with a JSON 413', async () => {
    await request(http).post('/small').send(payload(900_000)).expect(200);
    const response = await request(http).post('/small').send(payload(1_100_000)).expect(413);
    expect(response.body).toEqual({ statusCode: 413, message: 'request body is too large' });
  });

  it('lets bulk routes take up to 32 MB', async () => {
    await request(http).post('/big').send(payload(5_000_000)).expect(200);
    await request(http).post('/big').send(payload(34_000_000)).expect(413);
  });

  it('keeps the 1 MB cap on routes below a bulk route', async () => {
    await request(http).post('/big/1/ready').send(payload(900_000)).expect(200);
    await request(http).post('/big/1/ready').send(payload(1_100_000)).expect(413);
    await request(http).post('/big/').send(payload(1_100_000)).expect(200);
  });

  it('answers malformed JSON with a 400 in JSON', async () => {
    const response = await request(http)
      .post('/small')
      .set('Content-Type', 'application/json')
      .send('{"a": ')
      .expect(400);
    expect(response.body).toEqual({ statusCode: 400, message: 'body is not valid JSON' });
  });

  it('refuses a body nested too deeply with a 400, where the validation pipe would run out of stack', async () => {
    const nested = (depth: number) => `{"name":"a","extra":${'{"x":'.repeat(depth)}1${'}'.repeat(depth)}}`;
    const send = (body: string) =>
      request(http).post('/typed').set('Content-Type', 'application/json').send(body);
    const refused = await send(nested(5_000)).expect(400);
    expect(refused.body).toEqual({
      statusCode: 400,
      message: 'request body is nested more than 64 levels deep',
    });
    await send(nested(100)).expect(400);
    expect((await send(nested(60)).expect(200)).body).toEqual({ name: 'a' });
  });

  it('maps domain errors to 404 and 422 naming the field', async () => {
    expect((await request(http).get('/missing').expect(404)).body.message).toBe('patient not found');
    expect((await request(http).get('/invalid').expect(422)).body.message).toEqual([
      'phone must be a valid phone number',
    ]);
  });

  it('answers 503 when a dependency is unreachable, so Twilio retries', async () => {
    const response = await request(http).get('/db-down').expect(503);
    expect(response.body.message).toMatch(/retry/);
  });

  it("never leaks an internal error's text", async () => {
    const response = await request(http).get('/boom').expect(500);
    expect(JSON.stringify(response.body)).not.toContain('14155552671');
  });

  it('sets security headers', async () => {
    const response = await request(http).get('/missing');
    expect(response.headers['x-content-type-options']).toBe('nosniff');
    expect(response.headers['x-powered-by']).toBeUndefined();
  });
});
