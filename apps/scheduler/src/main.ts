import { bootstrap } from '@rxnotify/common/http/main';

void bootstrap({
  app: 'scheduler',
  title: 'rxnotify scheduler',
  description: 'Fill ingestion (JSON, CSV, FHIR), staff ready and pickup actions, reminder scans.',
  // Loaded after tracing starts (see AppEntry.module).
  module: async (config) => (await import('./scheduler.module')).SchedulerModule.forRoot(config),
  port: (config) => config.ports.scheduler,
  largeBodyRoutes: ['/v1/fills', '/fhir/r4'],
});
