import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { Module, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import { CatalogQueues } from '@rxnotify/common/metrics/catalog-queues';
import { AdminKeyMiddleware } from './admin-key.middleware';

export const QUEUES_ROUTE = '/queues';

/**
 * Bull Board at /queues: every queue of the catalog (jobs hold ids only), for admins. Retrying or removing a
 * job is safe: Postgres decides what is sent (a claimed notification is never claimed twice) and the
 * reconciler re-enqueues anything still pending.
 */
@Module({ providers: [AdminKeyMiddleware] })
export class QueuesModule implements NestModule {
  constructor(private readonly catalog: CatalogQueues) {}

  configure(consumer: MiddlewareConsumer): void {
    const board = new ExpressAdapter().setBasePath(QUEUES_ROUTE);
    createBullBoard({
      queues: [...this.catalog.all.values()].map((queue) => new BullMQAdapter(queue)),
      serverAdapter: board,
      options: { uiConfig: { boardTitle: 'rxnotify queues' } },
    });
    consumer.apply(AdminKeyMiddleware, board.getRouter()).forRoutes(QUEUES_ROUTE);
  }
}
