import { OTLPTraceExporter as OTLPJsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { exporterFor, incomingQueryAttributes, outgoingUrlAttributes } from './sdk';

describe('trace export', () => {
  it('exports nothing without OTEL_EXPORTER_OTLP_ENDPOINT', () => {
    expect(exporterFor({ protocol: 'http/protobuf' })).toBeNull();
  });

  it('exports OTLP over HTTP, protobuf by default and JSON on request', async () => {
    const proto = exporterFor({ endpoint: 'http://jaeger:4318', protocol: 'http/protobuf' });
    const json = exporterFor({ endpoint: 'http://jaeger:4318/', protocol: 'http/json' });
    expect(proto).toBeInstanceOf(OTLPProtoTraceExporter);
    expect(json).toBeInstanceOf(OTLPJsonTraceExporter);
    await Promise.all([proto?.shutdown(), json?.shutdown()]);
  });
});

describe('URLs on HTTP spans', () => {
  it('redacts every query value of an outgoing request (the provider search is by phone number), keeping the names', () => {
    const attributes = outgoingUrlAttributes({
      protocol: 'https:',
      hostname: 'api.twilio.com',
      port: 443,
      path: '/2010-04-01/Accounts/AC1/Messages.json?To=%2B14155557391&From=%2B14155550100&PageSize=100',
      auth: 'AC1:secret',
    });
    expect(attributes).toEqual({
      'url.full':
        'https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?To=REDACTED&From=REDACTED&PageSize=REDACTED',
    });
    expect(
      outgoingUrlAttributes({ protocol: 'http:', host: '127.0.0.1', port: 8080, path: '/x?a=1' }),
    ).toEqual({
      'url.full': 'http://127.0.0.1:8080/x?a=REDACTED',
    });
    expect(outgoingUrlAttributes({ path: '/2010-04-01/Accounts/AC1/Messages.json' })).toEqual({});
  });

  it('redacts every query value of an incoming request', () => {
    expect(incomingQueryAttributes('/v1/patients?phone=%2B14155557391&pharmacyId=1')).toEqual({
      'url.query': 'phone=REDACTED&pharmacyId=REDACTED',
    });
    expect(incomingQueryAttributes('/v1/patients')).toEqual({});
  });
});
