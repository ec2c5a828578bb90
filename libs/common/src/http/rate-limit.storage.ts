import type { ThrottlerStorage } from '@nestjs/throttler';

/** What the throttler reads back for a request (the package does not export the type by name). */
type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

/** Slots a window is divided into: one a second for the one-minute budget. */
const SLOTS = 60;
/**
 * Slots a caller's counts are kept in: the window's, plus the slot now being filled. A hit made in slot `s`
 * leaves the count when slot `s + 61` begins, so it is counted for at least a whole window, as the library's
 * storage counts it, and at most a slot more.
 */
const RING = SLOTS + 1;

interface Counter {
  /** Hits per slot; index `t % RING` holds slot time `t` (time / slot width). */
  readonly hits: Uint32Array;
  /** The latest slot time counted; older slots are emptied as time moves past them. */
  slot: number;
  /** The sum of `hits`. */
  total: number;
  /** Epoch ms until which the caller is refused; 0 when not blocked. */
  blockedUntil: number;
  /** The slot width in ms (the window / SLOTS). */
  readonly width: number;
}

/**
 * The rate limiter's counters, in the process, at a constant cost a request.
 *
 * Hand-written because the storage that comes with `@nestjs/throttler` keeps one expiry time per hit and copies
 * the whole list on every request: at the webhook budget, 60,000 a minute from one Twilio address, each status
 * callback filtered and copied an array of up to 60,000 numbers: a ninth of the dispatcher's CPU in its
 * benchmark. Here a caller's counts are kept per one-sixtieth of the window (a second), and a hit leaves the
 * count between one window and one window plus a second after it was made.
 *
 * Otherwise it answers as the library's storage does: the hit over the limit blocks the caller for the block
 * duration, hits while blocked are not counted, and the first hit after the block starts a new count; with no
 * block duration, a hit at the limit is refused (and not counted) until the oldest counted one leaves. One
 * difference: `timeToExpire` (the X-RateLimit-Reset header) is the time until the oldest counted hit leaves,
 * where the library gave the end of a fixed window opened by the caller's first hit.
 *
 * Should the clock step back, a caller's counts are dropped rather than held until the clock catches up:
 * admitting a burst of requests is better than refusing Twilio's callbacks for that long.
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
    // Once a window at the most, and at once after the clock stepped back past the planned sweep.
    if (now >= this.nextSweep || this.nextSweep - now > ttl) this.sweep(now, ttl);

    // A counter's slots are of one width: a caller counted under two windows gets two counters.
    const id = `${throttlerName}\u0000${ttl}\u0000${key}`;
    let counter = this.counters.get(id);
    if (!counter) {
      counter = { hits: new Uint32Array(RING), slot, total: 0, blockedUntil: 0, width };
      this.counters.set(id, counter);
    }
    advance(counter, slot);

    if (counter.blockedUntil > now && counter.blockedUntil - now <= blockDuration) {
      return Promise.resolve(record(counter, slot, width, now, true));
    }
    if (counter.blockedUntil !== 0) {
      // The block is over (or the clock stepped back across it): the caller starts again from nothing.
      clear(counter);
      counter.blockedUntil = 0;
    }
    if (blockDuration <= 0) {
      // No block period: a hit at the limit is refused, uncounted, until the oldest counted hit leaves.
      const refused = counter.total >= limit;
      if (!refused) count(counter, slot);
      return Promise.resolve(record(counter, slot, width, now, refused));
    }
    count(counter, slot);
    const blocked = counter.total > limit;
    if (blocked) counter.blockedUntil = now + blockDuration;
    return Promise.resolve(record(counter, slot, width, now, blocked));
  }

  /** Forgets callers with no hit in the window and no block running. */
  private sweep(now: number, ttl: number): void {
    this.nextSweep = now + ttl;
    for (const [id, counter] of this.counters) {
      const since = Math.floor(now / counter.width) - counter.slot;
      // Idle for the window, and not blocked; or last counted after now (the clock stepped back): dropped.
      if ((since >= RING && counter.blockedUntil <= now) || since < 0) this.counters.delete(id);
    }
  }
}

function count(counter: Counter, slot: number): void {
  counter.hits[slot % RING] += 1;
  counter.total += 1;
}

function clear(counter: Counter): void {
  counter.hits.fill(0);
  counter.total = 0;
}

/** Empties the slots that time has moved past since the counter's last hit. */
function advance(counter: Counter, slot: number): void {
  if (slot === counter.slot) return;
  if (slot < counter.slot || slot - counter.slot >= RING) {
    // Idle for longer than the ring, or the clock stepped back: nothing counted is still in the window.
    clear(counter);
  } else {
    for (let t = counter.slot + 1; t <= slot; t++) {
      counter.total -= counter.hits[t % RING];
      counter.hits[t % RING] = 0;
    }
  }
  counter.slot = slot;
}

function record(
  counter: Counter,
  slot: number,
  width: number,
  now: number,
  refused: boolean,
): ThrottlerStorageRecord {
  // Seconds until the oldest counted hit leaves the window (the X-RateLimit-Reset header).
  let oldest = slot;
  for (let t = slot - RING + 1; t <= slot; t++) {
    if (counter.hits[t % RING] > 0) {
      oldest = t;
      break;
    }
  }
  const timeToExpire = Math.max(1, Math.ceil(((oldest + RING) * width - now) / 1000));
  const blockEnd = counter.blockedUntil > now ? counter.blockedUntil : 0;
  return {
    totalHits: counter.total + (refused && blockEnd === 0 ? 1 : 0),
    timeToExpire,
    isBlocked: refused,
    timeToBlockExpire: refused
      ? blockEnd
        ? Math.max(1, Math.ceil((blockEnd - now) / 1000))
        : timeToExpire
      : 0,
  };
}
