/**
 * Is the end user connected to their conversation right now? The room answers from what it holds:
 * its own WebSockets tagged `end_user` (partyserver's getConnections yields only open ones) and its
 * Socket.IO subscribers of audience `end_user`. A connection that died without a close (a phone
 * that lost the network) counts until the server notices: see docs/push.md.
 */
import type { Subscriber } from "../conversation/subscribers";

export function endUserLive(endUserSockets: Iterable<unknown>, subscribers: readonly Subscriber[]): boolean {
  for (const _ of endUserSockets) return true;
  return subscribers.some((s) => s.audience === "end_user");
}
