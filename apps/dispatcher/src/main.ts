import { bootstrap } from '@rxnotify/common/http/main';

void bootstrap({
  app: 'dispatcher',
  title: 'rxnotify dispatcher',
  description: 'Delivery workers, notifications, the message log and Twilio status callbacks.',
  // Loaded after tracing starts (see AppEntry.module).
  module: async (config) => (await import('./dispatcher.module')).DispatcherModule.forRoot(config),
  port: (config) => config.ports.dispatcher,
});
