import { OTLPTraceExporter as OTLPJsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { exporterFor } from './sdk';

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
