/**
 * Auto-assignment as a pure function: among online agents with the queue's skill and spare
 * capacity, the one with the fewest open conversations; ties go to the longest idle (the
 * oldest last assignment).
 */
export interface Candidate {
  agent_id: string;
  open: number;
  capacity: number;
  last_assigned_ms: number;
}

export function pickAgent(candidates: Candidate[]): string | null {
  const free = candidates.filter((c) => c.open < c.capacity);
  free.sort((a, b) => a.open - b.open || a.last_assigned_ms - b.last_assigned_ms || a.agent_id.localeCompare(b.agent_id));
  return free[0]?.agent_id ?? null;
}

/**
 * Seconds a customer at `position` (1-based) may wait: a recent conversation's handling time per
 * place in line (from recent handling times in ms), or a default until there are some.
 */
export function estimateWaitS(position: number, recentWaitsMs: number[], defaultPerSlotS = 120): number {
  const perSlot = recentWaitsMs.length ? recentWaitsMs.reduce((a, b) => a + b, 0) / recentWaitsMs.length / 1000 : defaultPerSlotS;
  return Math.round(position * perSlot);
}
