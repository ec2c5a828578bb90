import { bootstrap } from '@rxnotify/common/http/main';

void bootstrap({
  app: 'consent-api',
  title: 'rxnotify consent-api',
  description: 'Pharmacies, patients, consent and the access log; Twilio inbound SMS and voice webhooks.',
  // Loaded after tracing starts (see AppEntry.module).
  module: async (config) => (await import('./consent-api.module')).ConsentApiModule.forRoot(config),
  port: (config) => config.ports.consentApi,
});
