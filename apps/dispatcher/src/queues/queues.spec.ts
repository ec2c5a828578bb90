import request from 'supertest';
import { QueueName } from '@rxnotify/common/queue/queue.catalog';
import { startTestApp, type TestApp } from '../../../../test/helpers/app';
import { DispatcherModule } from '../dispatcher.module';

describe('the queue dashboard (dispatcher /queues)', () => {
  let t: TestApp;
  let admin: string;
  let staff: string;
  let scopedAdmin: string;

  beforeAll(async () => {
    t = await startTestApp((config) => DispatcherModule.forRoot(config));
    const pharmacy = await t.given.pharmacy();
    admin = await t.given.apiKey('admin');
    staff = await t.given.apiKey('staff', pharmacy);
    scopedAdmin = await t.given.apiKey('admin', pharmacy);
  });
  afterAll(() => t.close());

  it('refuses a request without a key (401), and a staff key (403)', async () => {
    await request(t.http).get('/queues').expect(401);
    await request(t.http).get('/queues/api/queues').expect(401);
    await request(t.http).get('/queues').set('Authorization', 'Bearer not-a-key').expect(401);
    await request(t.http).get('/queues').set('Authorization', `Bearer ${staff}`).expect(403);
    await request(t.http).get('/queues/api/queues').set('Authorization', `Bearer ${staff}`).expect(403);
  });

  it("refuses an admin key limited to one pharmacy (the queues hold every pharmacy's jobs)", async () => {
    for (const path of ['/queues', '/queues/api/queues']) {
      const res = await request(t.http).get(path).set('Authorization', `Bearer ${scopedAdmin}`).expect(403);
      expect(JSON.stringify(res.body)).toContain('not limited to one pharmacy');
    }
  });

  it('takes no key from the query string', async () => {
    await request(t.http).get(`/queues?key=${admin}`).expect(401);
  });

  it('serves the board to an admin, with every queue of the catalog', async () => {
    const page = await request(t.http).get('/queues').set('Authorization', `Bearer ${admin}`).expect(200);
    expect(page.text).toContain('<base href="/queues/"');
    const api = await request(t.http)
      .get('/queues/api/queues')
      .set('Authorization', `Bearer ${admin}`)
      .expect(200);
    const names = (api.body as { queues: Array<{ name: string }> }).queues.map((queue) => queue.name).sort();
    expect(names).toEqual(Object.values(QueueName).sort());
  });
});
