import fc from 'fast-check';
import { computePdc, fromDayNumber, isAtRisk, toDayNumber, type PdcFill, type TherapyPdc } from './pdc';

const TODAY = '2026-03-09'; // window: 2025-03-10 .. 2026-03-09
const fill = (
  serviceDate: string,
  daysSupply: number,
  drug = 'Atorvastatin 20 mg',
  therapy = 'Statins',
): PdcFill => ({
  therapy,
  drug,
  serviceDate,
  daysSupply,
});

describe('computePdc (PQA), hand-computed', () => {
  it.each<[string, PdcFill[], Omit<TherapyPdc, 'therapy'>]>([
    [
      'a single 30-day fill 10 days ago: period 11 days, all covered',
      [fill('2026-02-27', 30)],
      {
        pdc: 1,
        daysCovered: 11,
        daysInPeriod: 11,
        firstFillDate: '2026-02-27',
        lastRunOutDate: '2026-03-29',
        daysLate: 0,
        atRisk: false,
      },
    ],
    [
      'a 1-day fill today: today is included',
      [fill(TODAY, 1)],
      {
        pdc: 1,
        daysCovered: 1,
        daysInPeriod: 1,
        firstFillDate: TODAY,
        lastRunOutDate: '2026-03-10',
        daysLate: 0,
        atRisk: false,
      },
    ],
    [
      'supply ran out today: not covered today, but 0 days late on the run-out day',
      // 02-07 + 30 days covers 02-07..03-08 (30 of 31 days)
      [fill('2026-02-07', 30)],
      {
        pdc: 0.9677,
        daysCovered: 30,
        daysInPeriod: 31,
        firstFillDate: '2026-02-07',
        lastRunOutDate: TODAY,
        daysLate: 0,
        atRisk: false,
      },
    ],
    [
      'same drug, early refill: the overlap is shifted forward',
      // 01-01..01-30, then the 01-21 fill starts 01-31..03-01: 60 of 68 days (unshifted it would be 50)
      [fill('2026-01-01', 30), fill('2026-01-21', 30)],
      {
        pdc: 0.8824,
        daysCovered: 60,
        daysInPeriod: 68,
        firstFillDate: '2026-01-01',
        lastRunOutDate: '2026-03-02',
        daysLate: 7,
        atRisk: false,
      },
    ],
    [
      'two drugs of one class overlapping: not shifted, each day counted once',
      // lisinopril 01-01..01-30, enalapril 01-21..02-19: union 01-01..02-19 = 50 of 68 days
      [
        fill('2026-01-01', 30, 'Lisinopril 10 mg', 'ACE inhibitors'),
        fill('2026-01-21', 30, 'Enalapril 5 mg', 'ACE inhibitors'),
      ],
      {
        pdc: 0.7353,
        daysCovered: 50,
        daysInPeriod: 68,
        firstFillDate: '2026-01-01',
        lastRunOutDate: '2026-02-20',
        daysLate: 17,
        atRisk: true,
      },
    ],
    [
      'non-adherent with gaps',
      // 2025-06-01..06-30 (30), 08-15..09-13 (30), 12-01..2026-02-28 (90) = 150 of 282 days (06-01..03-09)
      [fill('2025-06-01', 30), fill('2025-08-15', 30), fill('2025-12-01', 90)],
      {
        pdc: 0.5319,
        daysCovered: 150,
        daysInPeriod: 282,
        firstFillDate: '2025-06-01',
        lastRunOutDate: '2026-03-01',
        daysLate: 8,
        atRisk: true,
      },
    ],
    [
      'supply past today is truncated',
      // 01-01..01-30 (30) + 02-15..03-09 of a 90-day fill (23) = 53 of 68; supply lasts to 05-15
      [fill('2026-01-01', 30), fill('2026-02-15', 90)],
      {
        pdc: 0.7794,
        daysCovered: 53,
        daysInPeriod: 68,
        firstFillDate: '2026-01-01',
        lastRunOutDate: '2026-05-16',
        daysLate: 0,
        atRisk: true,
      },
    ],
    [
      'a fill before the window is ignored, carry-over included: it neither covers nor shifts',
      // index 2025-03-20: 355 days; only 03-20..04-18 covered; run-out 04-19 is 324 days before today
      [fill('2025-03-01', 90), fill('2025-03-20', 30)],
      {
        pdc: 0.0845,
        daysCovered: 30,
        daysInPeriod: 355,
        firstFillDate: '2025-03-20',
        lastRunOutDate: '2025-04-19',
        daysLate: 324,
        atRisk: true,
      },
    ],
    [
      'a fill on the first day of the window counts: 365-day period',
      [fill('2025-03-10', 365)],
      {
        pdc: 1,
        daysCovered: 365,
        daysInPeriod: 365,
        firstFillDate: '2025-03-10',
        lastRunOutDate: '2026-03-10',
        daysLate: 0,
        atRisk: false,
      },
    ],
    [
      'exactly 0.80 (292 of 365) is not at risk',
      [fill('2025-03-10', 146), fill('2025-08-03', 146)],
      {
        pdc: 0.8,
        daysCovered: 292,
        daysInPeriod: 365,
        firstFillDate: '2025-03-10',
        lastRunOutDate: '2025-12-27',
        daysLate: 72,
        atRisk: false,
      },
    ],
    [
      'just below 0.80 (291 of 364 = 0.79945...) is at risk',
      [fill('2025-03-11', 291)],
      {
        pdc: 0.7995,
        daysCovered: 291,
        daysInPeriod: 364,
        firstFillDate: '2025-03-11',
        lastRunOutDate: '2025-12-27',
        daysLate: 72,
        atRisk: true,
      },
    ],
  ])('%s', (_, fills, expected) => {
    expect(computePdc(fills, TODAY)).toEqual([{ therapy: fills[0].therapy, ...expected }]);
  });

  it('reports nothing for a therapy whose only fills are before the window or after today', () => {
    expect(computePdc([fill('2025-03-09', 365), fill('2026-03-10', 30)], TODAY)).toEqual([]);
  });

  it('reports each therapy on its own, sorted by therapy', () => {
    const result = computePdc(
      [
        fill('2026-03-01', 30, 'Metformin 500 mg', 'Metformin 500 mg'),
        fill('2026-03-05', 30, 'Atorvastatin 20 mg', 'Statins'),
      ],
      TODAY,
    );
    expect(result.map((r) => [r.therapy, r.daysInPeriod])).toEqual([
      ['Metformin 500 mg', 9],
      ['Statins', 5],
    ]);
  });

  it.each([
    [0.8, false],
    [0.7999, true],
    [0.79995, true],
    [1, false],
    [0, true],
  ])('isAtRisk(%p) is %p', (pdc, expected) => {
    expect(isAtRisk(pdc)).toBe(expected);
  });

  it.each(['2026-02-30', '2026-3-09', '0050-01-01', '', '2026-03-09T00:00:00Z'])(
    'rejects the date %p',
    (date) => {
      expect(() => computePdc([], date)).toThrow(RangeError);
      expect(() => computePdc([fill(date, 30)], TODAY)).toThrow(RangeError);
    },
  );

  it.each([0, -1, 1.5, Number.NaN])('rejects daysSupply %p', (daysSupply) => {
    expect(() => computePdc([fill('2026-03-01', daysSupply)], TODAY)).toThrow(RangeError);
  });

  it('turns dates into day numbers across leap days and back', () => {
    expect(toDayNumber('1970-01-01')).toBe(0);
    expect(toDayNumber('2024-03-01') - toDayNumber('2024-02-28')).toBe(2);
    expect(toDayNumber('2026-03-09') - toDayNumber('2025-03-09')).toBe(365);
    expect(fromDayNumber(toDayNumber('2028-02-29'))).toBe('2028-02-29');
  });
});

describe('computePdc properties', () => {
  const todays = fc.integer({ min: toDayNumber('2020-01-01'), max: toDayNumber('2035-12-31') });
  // Offsets reach before the window and after today, so ignored fills are exercised too.
  const fillAt = (today: number) =>
    fc.record({
      therapy: fc.constantFrom('Statins', 'ACE inhibitors'),
      drug: fc.constantFrom('a', 'b', 'c'),
      serviceDate: fc.integer({ min: -5, max: 420 }).map((ago) => fromDayNumber(today - ago)),
      daysSupply: fc.integer({ min: 1, max: 365 }),
    });
  const scenario = todays.chain((today) =>
    fc.tuple(fc.constant(fromDayNumber(today)), fc.array(fillAt(today), { maxLength: 25 }), fillAt(today)),
  );

  it('keeps 0 <= pdc <= 1 and a consistent result', () => {
    fc.assert(
      fc.property(scenario, ([today, fills]) => {
        for (const r of computePdc(fills, today)) {
          expect(r.pdc).toBeGreaterThanOrEqual(0);
          expect(r.pdc).toBeLessThanOrEqual(1);
          expect(r.daysCovered).toBeGreaterThanOrEqual(1);
          expect(r.daysCovered).toBeLessThanOrEqual(r.daysInPeriod);
          expect(r.daysInPeriod).toBeLessThanOrEqual(365);
          expect(r.pdc).toBe(Math.round((r.daysCovered / r.daysInPeriod) * 10_000) / 10_000);
          expect(r.atRisk).toBe(r.daysCovered / r.daysInPeriod < 0.8);
          expect(r.daysLate).toBe(Math.max(0, toDayNumber(today) - toDayNumber(r.lastRunOutDate)));
        }
      }),
    );
  });

  it('covers the same days as a day-by-day simulation of supply on hand per drug', () => {
    // Independent of the shifting: each day a drug's supply arrives on its service date and one day is used
    // while any is on hand; a class covers a day when any of its drugs does.
    const simulate = (fills: PdcFill[], today: string, therapy: string, from: number) => {
      const end = toDayNumber(today);
      const inWindow = fills.filter(
        (f) =>
          f.therapy === therapy && toDayNumber(f.serviceDate) >= from && toDayNumber(f.serviceDate) <= end,
      );
      const onHand = new Map<string, number>();
      let covered = 0;
      for (let day = from; day <= end; day++) {
        for (const f of inWindow)
          if (toDayNumber(f.serviceDate) === day)
            onHand.set(f.drug, (onHand.get(f.drug) ?? 0) + f.daysSupply);
        let any = false;
        for (const [drug, left] of onHand) {
          if (left > 0) {
            any = true;
            onHand.set(drug, left - 1);
          }
        }
        if (any) covered++;
      }
      return covered;
    };
    fc.assert(
      fc.property(scenario, ([today, fills]) => {
        for (const r of computePdc(fills, today)) {
          expect(r.daysCovered).toBe(simulate(fills, today, r.therapy, toDayNumber(r.firstFillDate)));
        }
      }),
    );
  });

  it('never lowers covered days when a fill is added', () => {
    fc.assert(
      fc.property(scenario, ([today, fills, extra]) => {
        const after = new Map(computePdc([...fills, extra], today).map((r) => [r.therapy, r]));
        for (const before of computePdc(fills, today)) {
          expect(after.get(before.therapy)?.daysCovered).toBeGreaterThanOrEqual(before.daysCovered);
          expect(toDayNumber(after.get(before.therapy)?.lastRunOutDate ?? '')).toBeGreaterThanOrEqual(
            toDayNumber(before.lastRunOutDate),
          );
        }
      }),
    );
  });

  it('does not depend on input order', () => {
    const shuffled = scenario.chain(([today, fills]) =>
      fc.tuple(
        fc.constant(today),
        fc.constant(fills),
        fc.shuffledSubarray(fills, { minLength: fills.length, maxLength: fills.length }),
      ),
    );
    fc.assert(
      fc.property(shuffled, ([today, fills, reordered]) => {
        expect(computePdc(reordered, today)).toEqual(computePdc(fills, today));
      }),
    );
  });
});
