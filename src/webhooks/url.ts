/**
 * Which webhook URLs Parley will POST to (server-side request forgery guard). Checked when an
 * endpoint is configured and again before every attempt, so a policy change or a bad row never
 * turns into a request.
 *
 * - `https:` only. With `ALLOW_LOCAL_WEBHOOKS=true` (local development and tests) a loopback
 *   receiver is also allowed, over http or https: 127.0.0.0/8, [::1], `localhost`.
 * - IP literals must be public unicast: private, loopback, link-local (cloud metadata
 *   169.254.169.254), CGNAT, documentation, multicast, reserved, IPv4-mapped/NAT64/6to4 forms of
 *   those, and every IPv6 address outside global unicast (2000::/3) are refused. The WHATWG URL
 *   parser has already normalised odd IPv4 spellings (`2130706433`, `0x7f.1`) to dotted form.
 * - Host names: `localhost` and `*.localhost` count as loopback; single-label names and internal
 *   suffixes (`.internal`, `.local`, `.lan`, …) are refused. Names are not resolved here (Workers
 *   has no DNS API); deployed Workers reach the public Internet only. See docs/webhooks.md.
 * - No credentials in the URL; redirects are never followed (the sender uses redirect: "manual").
 */

export type UrlCheck = { ok: true; url: string } | { ok: false; reason: string };

export const MAX_URL_LENGTH = 2048;

const INTERNAL_SUFFIXES = ["local", "localdomain", "internal", "intranet", "lan", "home.arpa", "corp", "private"];

export function allowLocalWebhooks(env: { ALLOW_LOCAL_WEBHOOKS?: string }): boolean {
  return env.ALLOW_LOCAL_WEBHOOKS === "true";
}

export function checkWebhookUrl(raw: string, allowLocal: boolean): UrlCheck {
  if (raw.length > MAX_URL_LENGTH) return { ok: false, reason: `longer than ${MAX_URL_LENGTH} characters` };
  if (!URL.canParse(raw)) return { ok: false, reason: "not a valid URL" };
  const url = new URL(raw);
  if (url.protocol !== "https:" && url.protocol !== "http:") return { ok: false, reason: "must be an https URL" };
  if (url.username || url.password) return { ok: false, reason: "must not contain credentials" };
  const host = classifyHost(url.hostname);
  if (host.kind === "refused") return { ok: false, reason: host.reason };
  if (host.kind === "loopback") {
    if (!allowLocal) return { ok: false, reason: "loopback addresses are not allowed" };
    return { ok: true, url: url.href };
  }
  if (url.protocol !== "https:") return { ok: false, reason: "must be an https URL" };
  return { ok: true, url: url.href };
}

type HostClass = { kind: "public" } | { kind: "loopback" } | { kind: "refused"; reason: string };

export function classifyHost(hostname: string): HostClass {
  const host = hostname.toLowerCase().replace(/\.$/, "");
  if (host.startsWith("[")) return classifyV6(host.slice(1, -1));
  if (/^\d+\.\d+\.\d+\.\d+$/.test(host)) return classifyV4(host.split(".").map(Number));
  if (host === "localhost" || host.endsWith(".localhost")) return { kind: "loopback" };
  if (!host.includes(".")) return { kind: "refused", reason: "single-label host names are not allowed" };
  if (INTERNAL_SUFFIXES.some((s) => host.endsWith(`.${s}`))) return { kind: "refused", reason: "internal host names are not allowed" };
  return { kind: "public" };
}

const V4_REFUSED: [number, number, number, number, number, string][] = [
  [0, 0, 0, 0, 8, "this-network"],
  [10, 0, 0, 0, 8, "private"],
  [100, 64, 0, 0, 10, "shared (CGNAT)"],
  [169, 254, 0, 0, 16, "link-local"],
  [172, 16, 0, 0, 12, "private"],
  [192, 0, 0, 0, 24, "IETF protocol"],
  [192, 0, 2, 0, 24, "documentation"],
  [192, 88, 99, 0, 24, "6to4 relay"],
  [192, 168, 0, 0, 16, "private"],
  [198, 18, 0, 0, 15, "benchmarking"],
  [198, 51, 100, 0, 24, "documentation"],
  [203, 0, 113, 0, 24, "documentation"],
  [224, 0, 0, 0, 4, "multicast"],
  [240, 0, 0, 0, 4, "reserved"],
];

function classifyV4(octets: number[]): HostClass {
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) return { kind: "refused", reason: "invalid IPv4 address" };
  const value = ((octets[0]! << 24) >>> 0) + (octets[1]! << 16) + (octets[2]! << 8) + octets[3]!;
  if (octets[0] === 127) return { kind: "loopback" };
  for (const [a, b, c, d, bits, what] of V4_REFUSED) {
    const base = ((a << 24) >>> 0) + (b << 16) + (c << 8) + d;
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    if (((value & mask) >>> 0) === base) return { kind: "refused", reason: `${what} addresses are not allowed` };
  }
  return { kind: "public" };
}

function classifyV6(text: string): HostClass {
  const groups = parseV6(text);
  if (!groups) return { kind: "refused", reason: "invalid IPv6 address" };
  const [g0, g1, g2, g3, g4, g5, g6, g7] = groups as [number, number, number, number, number, number, number, number];
  const firstFiveZero = g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0;
  if (firstFiveZero && g5 === 0 && g6 === 0 && g7 === 1) return { kind: "loopback" };
  // IPv4-mapped (::ffff:a.b.c.d): judged as the IPv4 address it stands for.
  if (firstFiveZero && g5 === 0xffff) return classifyV4([g6 >> 8, g6 & 0xff, g7 >> 8, g7 & 0xff]);
  // Only global unicast (2000::/3) is reachable on the Internet; within it, refuse the special blocks.
  if ((g0 & 0xe000) !== 0x2000) return { kind: "refused", reason: "non-global IPv6 addresses are not allowed" };
  if (g0 === 0x2001 && g1 < 0x200) return { kind: "refused", reason: "IETF protocol IPv6 addresses are not allowed" };
  if (g0 === 0x2001 && g1 === 0x0db8) return { kind: "refused", reason: "documentation addresses are not allowed" };
  if (g0 === 0x2002) return { kind: "refused", reason: "6to4 addresses are not allowed" };
  if (g0 === 0x3fff && g1 < 0x1000) return { kind: "refused", reason: "documentation addresses are not allowed" };
  return { kind: "public" };
}

/** Eight 16-bit groups, or null. Accepts `::` compression and a dotted IPv4 tail. */
function parseV6(text: string): number[] | null {
  let s = text;
  const tail: number[] = [];
  const dotted = s.match(/^(.*:)(\d+\.\d+\.\d+\.\d+)$/);
  if (dotted) {
    const o = dotted[2]!.split(".").map(Number);
    if (o.some((x) => x > 255)) return null;
    tail.push((o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!);
    s = dotted[1]!.endsWith("::") ? dotted[1]! : dotted[1]!.slice(0, -1);
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const part = (p: string) => (p === "" ? [] : p.split(":"));
  const head = part(halves[0]!);
  const rest = halves.length === 2 ? part(halves[1]!) : [];
  if ([...head, ...rest].some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return null;
  const known = head.length + rest.length + tail.length;
  if (halves.length === 1 ? known !== 8 : known > 7) return null;
  const zeros = new Array<number>(8 - known).fill(0);
  return [...head.map((g) => parseInt(g, 16)), ...(halves.length === 2 ? zeros : []), ...rest.map((g) => parseInt(g, 16)), ...tail];
}
