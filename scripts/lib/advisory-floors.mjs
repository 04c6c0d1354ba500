// S17: the lowest version of each production dependency that Parley accepts, with the advisories
// that set it. npm audit needs the registry's advisory endpoint, which the registry reachable from
// this workplace and its CI does not serve (405), so this table is the check that always runs:
// test/e2e/dependency-posture.test.ts holds package.json's ranges and package-lock.json to it.
// Every production dependency has a row; a new one needs a row (a floor, or none known) to pass.
// Update a floor when an advisory is published; `npm run audit` where the public endpoint answers.
/** @type {Record<string, {floor: string, advisories: string[]}>} */
export const ADVISORY_FLOORS = {
  hono: {
    floor: "4.12.26",
    advisories: [
      "GHSA-q7jf-gf43-6x6p (Vary header injection, CORS bypass)",
      "GHSA-88fw-hqm2-52qc (CORS reflecting any origin with credentials)",
      "GHSA-wwfh-h76j-fc44, GHSA-rv63-4mwf-qqc2, GHSA-j6c9-x7qj-28xf, GHSA-wgpf-jwqj-8h8p (fixed by 4.12.26)",
      "GHSA-8wjg-2qrw-6cf2, GHSA-87xc-2fmq-h3xv, GHSA-cv2m-gx9q-9pf4 (routing and cookie names, fixed by 4.12.14)",
    ],
  },
  "drizzle-orm": { floor: "0.45.2", advisories: ["GHSA-gpj5-g38j-94v9 / CVE-2026-39356 (SQL injection through identifiers)"] },
  "socket.io-parser": {
    floor: "4.2.7",
    advisories: ["GHSA-2m8v-j782-fhvr / CVE-2026-69185 and CVE-2026-33151 (unbounded binary attachments)", "CVE-2023-32695 (packet validation)"],
  },
  "engine.io-parser": { floor: "5.2.3", advisories: [] },
  zod: { floor: "3.22.3", advisories: ["CVE-2023-4316 (email regex ReDoS)"] },
  partyserver: { floor: "0.5.10", advisories: [] },
  partysocket: { floor: "1.3.0", advisories: [] },
};

/**
 * -1, 0 or 1: a compared with b, numerically per dot-separated part (pre-release tags rank lower).
 * @param {string} a
 * @param {string} b
 * @returns {number}
 */
export function compareVersions(a, b) {
  const parts = (/** @type {string} */ v) => (v.split("-")[0] ?? "").split(".").map(Number);
  const [x, y] = [parts(a), parts(b)];
  for (let i = 0; i < 3; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) < (y[i] ?? 0) ? -1 : 1;
  const [pa, pb] = [a.includes("-"), b.includes("-")];
  return pa === pb ? 0 : pa ? -1 : 1;
}
