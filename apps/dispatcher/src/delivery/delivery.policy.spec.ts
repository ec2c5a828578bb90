import fc from 'fast-check';
import {
  decideDelivery,
  isStale,
  notificationStateFor,
  pickupTemplateStep,
  statusesBefore,
  type ConsentStatus,
} from './delivery.policy';

const base = {
  smsConsent: 'opted_in' as ConsentStatus,
  voiceConsent: null as ConsentStatus,
  smsCapable: true,
  hasVoiceNumber: true,
};

describe('decideDelivery (channel and consent)', () => {
  it.each([
    [{ smsConsent: 'opted_in' }, { action: 'send', channel: 'sms' }],
    [{ smsConsent: null }, { action: 'suppress', reason: 'no_consent' }],
    [{ smsConsent: 'opted_out' }, { action: 'suppress', reason: 'opted_out' }],
    [
      { smsConsent: null, voiceConsent: 'opted_in' },
      { action: 'send', channel: 'voice' },
    ],
    [
      { smsConsent: 'opted_out', voiceConsent: 'opted_in' },
      { action: 'send', channel: 'voice' },
    ],
    [
      { smsCapable: false, voiceConsent: 'opted_in' },
      { action: 'send', channel: 'voice' },
    ],
    [
      { smsCapable: false, voiceConsent: null },
      { action: 'follow_up', reason: 'landline without voice consent: call the patient' },
    ],
    // Pressed 9: no calls, automated or by staff.
    [
      { smsCapable: false, voiceConsent: 'opted_out' },
      { action: 'suppress', reason: 'opted_out' },
    ],
    [
      { smsConsent: null, smsCapable: false, voiceConsent: null },
      { action: 'suppress', reason: 'no_consent' },
    ],
    [
      { smsConsent: 'opted_out', smsCapable: false, voiceConsent: null },
      { action: 'suppress', reason: 'opted_out' },
    ],
    [
      { smsConsent: null, voiceConsent: 'opted_in', hasVoiceNumber: false },
      { action: 'suppress', reason: 'no_consent' },
    ],
  ])('%j → %j', (overrides, expected) => {
    expect(decideDelivery({ ...base, ...overrides } as typeof base)).toEqual(expected);
  });

  it('never sends on a channel the patient has not opted in to', () => {
    const consent = fc.constantFrom<ConsentStatus>('opted_in', 'opted_out', null);
    fc.assert(
      fc.property(consent, consent, fc.boolean(), fc.boolean(), (sms, voice, smsCapable, hasVoiceNumber) => {
        const decision = decideDelivery({ smsConsent: sms, voiceConsent: voice, smsCapable, hasVoiceNumber });
        if (decision.action !== 'send') return true;
        return decision.channel === 'sms' ? sms === 'opted_in' && smsCapable : voice === 'opted_in';
      }),
    );
  });
});

describe('isStale', () => {
  it.each([
    ['ready', ['ready'], false, null],
    ['ready', ['picked_up'], false, 'stale:picked_up'],
    ['ready', ['ready', 'returned_to_stock'], false, 'stale:returned_to_stock'],
    ['unclaimed_pickup', ['picked_up'], false, 'stale:picked_up'],
    ['refill_due', ['picked_up'], false, null],
    ['refill_due', ['picked_up'], true, 'stale:refilled'],
    ['adherence_gap', ['picked_up'], true, 'stale:refilled'],
    ['renewal_needed', ['returned_to_stock'], false, 'stale:returned_to_stock'],
    ['ready', [], false, 'stale:no_fill'],
  ])('%s with fills %j (refilled %s) → %s', (kind, statuses, refilled, expected) => {
    expect(isStale(kind, statuses, refilled)).toBe(expected);
  });
});

describe('pickupTemplateStep', () => {
  it.each([
    [1, 3, 1],
    [2, 3, 2],
    [3, 3, 3],
    [1, 2, 1],
    [2, 2, 3],
    [1, 1, 3],
    [4, 5, 2],
    [5, 5, 3],
  ])('reminder %i of %i uses template step %i', (step, reminders, expected) => {
    expect(pickupTemplateStep(step, reminders)).toBe(expected);
  });
});

describe('status ordering', () => {
  it('keeps final statuses sticky and never moves backwards', () => {
    expect(statusesBefore('delivered')).toEqual(expect.arrayContaining(['intent', 'queued', 'sent']));
    expect(statusesBefore('delivered')).not.toContain('failed');
    expect(statusesBefore('sent')).not.toContain('delivered');
    expect(statusesBefore('queued')).toEqual(['intent']);
  });

  it('maps provider statuses to notification states', () => {
    expect(notificationStateFor('delivered')).toBe('delivered');
    expect(notificationStateFor('undelivered')).toBe('failed');
    expect(notificationStateFor('sent')).toBeNull();
  });
});
