/**
 * The scan, one set-based statement per event kind. Every statement inserts with ON CONFLICT (dedup_key)
 * DO NOTHING, so running a scan twice, or two at once, never makes a second notification for the same event.
 *
 * Dates are local dates in the patient's time zone (else the pharmacy's), computed in SQL with `date`
 * arithmetic, so DST changes and month ends need no special care. Defaults for settings a pharmacy did not
 * override come in as parameters from DEFAULT_PHARMACY_SETTINGS.
 *
 * Parameters common to all: $1 now (timestamptz), $2 pharmacy id or null (every pharmacy).
 */

/** The local "today" and each fill's run-out date (service date + days supply). */
const LOCAL_DATES = `
  CROSS JOIN LATERAL (SELECT coalesce(p.timezone, ph.timezone) AS tz) zone
  CROSS JOIN LATERAL (
    SELECT ($1::timestamptz AT TIME ZONE zone.tz)::date AS today,
           (coalesce(f.picked_up_at, f.filled_at) AT TIME ZONE zone.tz)::date AS service_date,
           (coalesce(f.picked_up_at, f.filled_at) AT TIME ZONE zone.tz)::date + f.days_supply AS run_out
  ) d`;

/**
 * A fill's run-out date in UTC, as `fills_run_out_idx` has it. Local dates differ from UTC ones by a day at most,
 * so `RUN_OUT_NEAR(from, to)` (days around today) with two days of slack keeps every fill the scan's exact test,
 * in local dates, could accept, and lets the index skip the history that ran out long ago. The settings that
 * widen the window (grace days, lead days) are the largest any pharmacy has.
 */
const RUN_OUT_UTC = `((coalesce(f.picked_up_at, f.filled_at) AT TIME ZONE 'UTC')::date + f.days_supply)`;
const TODAY_UTC = `($1::timestamptz AT TIME ZONE 'UTC')::date`;
/** The largest grace days of any pharmacy; `defaultGrace` is the parameter holding the default. */
const maxGrace = (defaultGrace: string) =>
  `(SELECT max(coalesce((settings->>'adherenceGraceDays')::int, ${defaultGrace})) FROM pharmacies)`;
const MAX_GRACE = maxGrace('$3::int');
const MAX_LEAD = `(SELECT max(greatest(coalesce((settings->>'refillLeadDays')::int, 0), 7)) FROM pharmacies)`;

/**
 * The refill statement's run-out window in UTC dates: its first day (text, YYYY-MM-DD) and how many days it has.
 * Computed once per scan and handed to each part of REFILL_SCAN, so the parts split one window even if a
 * pharmacy's settings change between them. $1 now, $2 default grace days.
 */
export const REFILL_WINDOW = `
  SELECT (${TODAY_UTC} - 2 - grace)::text AS "firstDay", 5 + grace + ${MAX_LEAD} AS days
  FROM ${maxGrace('$2::int')} AS g(grace)`;

/**
 * A later fill of the same prescription, or of the same therapy, that is not void: the patient refilled. Two
 * tests rather than one with OR: the prescription's is one probe of `fills_patient_rx_idx` and settles most
 * fills that were refilled, so only the rest read the patient's other fills for the therapy's.
 */
const NOT_REFILLED = `
  NOT EXISTS (
    SELECT 1 FROM fills later
    WHERE later.patient_id = f.patient_id AND later.rx_number = f.rx_number AND later.fill_number > f.fill_number
      AND later.status NOT IN ('returned_to_stock', 'cancelled')
  )
  AND NOT EXISTS (
    SELECT 1 FROM fills later
    WHERE later.patient_id = f.patient_id
      AND coalesce(later.therapeutic_class, later.drug_name) = coalesce(f.therapeutic_class, f.drug_name)
      AND later.filled_at > f.filled_at
      AND later.status NOT IN ('returned_to_stock', 'cancelled')
  )`;

/**
 * refill_due / renewal_needed: a fill the patient has, from `leadDays` before run-out until `graceDays`
 * after it; renewal_needed when no refills remain. Never on the day of the fill itself (a supply shorter than
 * the lead time). $3 default grace days. $6 and $7 are the run-out window (REFILL_WINDOW's first day and days);
 * $4 and $5 split it into $4 runs of days and take run $5 (0-based), so the scan can enqueue one part's
 * reminders while Postgres works on the next; (1, 0) takes the whole window. Each part reads only its own days
 * from `fills_run_out_idx` (a split by patient read the whole window once per part).
 */
export const REFILL_SCAN = `
  INSERT INTO notifications (pharmacy_id, patient_id, kind, fill_ids, dedup_key, due_at)
  SELECT f.pharmacy_id, f.patient_id,
         CASE WHEN f.refills_remaining > 0 THEN 'refill_due' ELSE 'renewal_needed' END,
         ARRAY[f.id],
         CASE WHEN f.refills_remaining > 0 THEN 'refill_due:' ELSE 'renewal_needed:' END || f.id,
         $1
  FROM fills f
  JOIN pharmacies ph ON ph.id = f.pharmacy_id
  JOIN patients p ON p.id = f.patient_id
  ${LOCAL_DATES}
  WHERE f.status = 'picked_up' AND ($2::uuid IS NULL OR f.pharmacy_id = $2)
    AND ${RUN_OUT_UTC} >= $6::date + $7::int * $5::int / $4::int
    AND ${RUN_OUT_UTC} < $6::date + $7::int * ($5::int + 1) / $4::int
    AND d.today >= greatest(d.run_out - coalesce((ph.settings->>'refillLeadDays')::int, CASE WHEN f.days_supply <= 34 THEN 5 ELSE 7 END),
                            d.service_date + 1)
    AND d.today <= d.run_out + coalesce((ph.settings->>'adherenceGraceDays')::int, $3::int)
    AND ${NOT_REFILLED}
  ON CONFLICT (dedup_key) DO NOTHING
  RETURNING id, kind`;

/**
 * adherence_gap: a maintenance therapy whose run-out passed `graceDays` with no refill; one outreach per gap,
 * and only for gaps that opened in the last $4 days (an import of old history is not news). $3 default grace days.
 */
export const ADHERENCE_SCAN = `
  INSERT INTO notifications (pharmacy_id, patient_id, kind, fill_ids, dedup_key, due_at)
  SELECT f.pharmacy_id, f.patient_id, 'adherence_gap', ARRAY[f.id], 'adherence_gap:' || f.id, $1
  FROM fills f
  JOIN pharmacies ph ON ph.id = f.pharmacy_id
  JOIN patients p ON p.id = f.patient_id
  ${LOCAL_DATES}
  WHERE f.status = 'picked_up' AND f.maintenance AND ($2::uuid IS NULL OR f.pharmacy_id = $2)
    AND ${RUN_OUT_UTC} BETWEEN ${TODAY_UTC} - 2 - ${MAX_GRACE} - $4::int AND ${TODAY_UTC} + 2
    AND d.today > d.run_out + coalesce((ph.settings->>'adherenceGraceDays')::int, $3::int)
    AND d.today <= d.run_out + coalesce((ph.settings->>'adherenceGraceDays')::int, $3::int) + $4::int
    AND ${NOT_REFILLED}
  ON CONFLICT (dedup_key) DO NOTHING
  RETURNING id, kind, patient_id`;

/**
 * unclaimed_pickup: a fill ready but not picked up. Reminder N goes out once `pickupReminderDays[N-1]` days
 * have passed since it was ready; only the latest step due is created (a scan that missed days does not
 * send a burst of catch-up reminders), and none from the return-to-stock day on. $3 default reminder days,
 * $4 default return-to-stock day.
 */
export const UNCLAIMED_SCAN = `
  INSERT INTO notifications (pharmacy_id, patient_id, kind, fill_ids, step, dedup_key, due_at)
  SELECT f.pharmacy_id, f.patient_id, 'unclaimed_pickup', ARRAY[f.id], s.step,
         'unclaimed_pickup:' || f.id || ':' || s.step, $1
  FROM fills f
  JOIN pharmacies ph ON ph.id = f.pharmacy_id
  JOIN patients p ON p.id = f.patient_id
  CROSS JOIN LATERAL (SELECT coalesce(p.timezone, ph.timezone) AS tz) zone
  CROSS JOIN LATERAL (
    SELECT ($1::timestamptz AT TIME ZONE zone.tz)::date - (f.ready_at AT TIME ZONE zone.tz)::date AS days_ready,
           CASE WHEN ph.settings ? 'pickupReminderDays'
                THEN ARRAY(SELECT jsonb_array_elements_text(ph.settings->'pickupReminderDays')::int)
                ELSE $3::int[] END AS days,
           coalesce((ph.settings->>'returnToStockDay')::int, $4::int) AS return_day
  ) r
  CROSS JOIN LATERAL (
    SELECT max(i)::smallint AS step FROM generate_subscripts(r.days, 1) AS i WHERE r.days[i] <= r.days_ready
  ) s
  WHERE f.status = 'ready' AND f.ready_at IS NOT NULL AND ($2::uuid IS NULL OR f.pharmacy_id = $2)
    AND s.step IS NOT NULL AND r.days_ready < r.return_day
  ON CONFLICT (dedup_key) DO NOTHING
  RETURNING id, kind`;
