/**
 * Business hours per queue: `{ timezone, hours: { mon: [["09:00","17:00"]], ... } }`. A queue
 * without hours is always open. Evaluated in the queue's IANA time zone.
 */
import { z } from "zod";

const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "HH:MM (24 h)");
const DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;

export const BusinessHours = z.object({
  timezone: z.string().max(64).refine((tz) => {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: tz });
      return true;
    } catch {
      return false; // not a time zone the runtime knows
    }
  }, "an IANA time zone such as Europe/Berlin"),
  hours: z.partialRecord(z.enum(DAYS), z.array(z.tuple([hhmm, hhmm])).max(6)),
});
export type BusinessHours = z.infer<typeof BusinessHours>;

export function isOpen(hours: BusinessHours | null, at: Date): boolean {
  if (!hours) return true;
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", { timeZone: hours.timezone, weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
      .formatToParts(at)
      .map((p) => [p.type, p.value]),
  );
  const day = (parts.weekday ?? "").toLowerCase().slice(0, 3) as (typeof DAYS)[number];
  const now = `${parts.hour}:${parts.minute}`;
  return (hours.hours[day] ?? []).some(([from, to]) => from <= now && now < to);
}
