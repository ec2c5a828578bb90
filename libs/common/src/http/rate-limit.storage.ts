import type { ThrottlerStorage } from '@nestjs/throttler';

/** What the throttler reads back for a request (the package does not export the type by name). */
type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

/** Parts of the window a caller's hits are counted in: one a second for the one-minute budget. */
const SLOTS = 60;

interface Counter {
  /** Hits per slot; slot `t % SLOTS` holds slot time `t` (time / slot width). */
  readonly hits: Uint32Array;
  /** The latest slot time counted; older slots are emptied as time moves past them. */
  slot: number;
  /** The sum of `hits`. */
  total: number;
  /** Epoch ms until which the caller is refused; 0 when not blocked. */
  blockedUntil: number;
}

/**
 * The rate limiter's counters, in the process, at a constant cost a request.
 *
 * Hand-written because the storage that comes with `@nestjs/throttler` keeps one expiry time per hit and copies
 * the whole list on every request: at the webhook budget, 60,000 a minute from one Twilio address, each status
 * callback filtered and copied an array of up to 60,000 numbers: a ninth of the dispatcher's CPU in its
 * benchmark. Here a caller's window is 60 slots of counts, emptied as time moves past them: a hit leaves the
 * count between one window and one window plus a slot (a second) after it was made.
 *
 * Otherwise it answers as the library's storage does: the hit over the limit blocks the caller for the block
 * duration, hits while blocked are not counted, and the first hit after the block starts a new count.
 */
export class SlidingWindowStorage implements ThrottlerStorage {
  private readonly counters = new Map<string, Counter>();
  private nextSweep = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** Callers being counted (for tests: idle callers are forgotten). */
  get size(): number {
    return this.counters.size;
  }

  increment(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
    throttlerName: string,
  ): Promise<ThrottlerStorageRecord> {
    const now = this.now();
    const width = ttl / SLOTS;
    const slot = Math.floor(now / width);
    if (now >= this.nextSweep) this.sweep(now, slot, ttl);

    const id = `${throttlerName}\u0000${key}`;
    let counter = this.counters.get(id);
    if (!counter) {
      counter = { hits: new Uint32Array(SLOTS), slot, total: 0, blockedUntil: 0 };
      this.counters.set(id, counter);
    }
    advance(counter, slot);

    if (counter.blockedUntil > now) {
      return Promise.resolve(record(counter, slot, width, now, true));
    }
    if (counter.blockedUntil !== 0) {
      // The block is over: the caller starts again from nothing.
      counter.hits.fill(0);
      counter.total = 0;
      counter.blockedUntil = 0;
    }
    counter.hits[slot % SLOTS] += 1;
    counter.total += 1;
    const blocked = blockDuration > 0 && counter.total > limit;
    if (blocked) counter.blockedUntil = now + blockDuration;
    return Promise.resolve(record(counter, slot, width, now, blocked));
  }

  /** Forgets callers with no hit in the window and no block running; at most once a window. */
  private sweep(now: number, slot: number, ttl: number): void {
    this.nextSweep = now + ttl;
    for (const [id, counter] of this.counters) {
      if (counter.blockedUntil <= now && slot - counter.slot >= SLOTS) this.counters.delete(id);
    }
  }
}

/** Empties the slots that time has moved past since the counter's last hit. */
function advance(counter: Counter, slot: number): void {
  if (slot <= counter.slot) return;
  if (slot - counter.slot >= SLOTS) {
    counter.hits.fill(0);
    counter.total = 0;
  } else {
    for (let t = counter.slot + 1; t <= slot; t++) {
      counter.total -= counter.hits[t % SLOTS];
      counter.hits[t % SLOTS] = 0;
    }
  }
  counter.slot = slot;
}

function record(
  counter: Counter,
  slot: number,
  width: number,
  now: number,
  isBlocked: boolean,
): ThrottlerStorageRecord {
  // Seconds until the oldest counted hit leaves the window (the X-RateLimit-Reset header).
  let oldest = slot;
  for (let t = slot - SLOTS + 1; t <= slot; t++) {
    if (counter.hits[t % SLOTS] > 0) {
      oldest = t;
      break;
    }
  }
  return {
    totalHits: counter.total,
    timeToExpire: Math.max(1, Math.ceil(((oldest + SLOTS) * width - now) / 1000)),
    isBlocked,
    timeToBlockExpire: isBlocked ? Math.max(1, Math.ceil((counter.blockedUntil - now) / 1000)) : 0,
  };
}
