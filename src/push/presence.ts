/**
 * Is the end user connected to their conversation right now? The room answers from what it holds:
 * its own open WebSockets tagged `end_user` (read without their attachments) and its
 * Socket.IO subscribers of audience `end_user`. A connection that died without a close (a phone
 * that lost the network) counts until the server notices: see docs/push.md.
 */
import type { Subscriber } from "../conversation/subscribers";

export function endUserLive(endUserSockets: readonly WebSocket[], subscribers: readonly Subscriber[]): boolean {
  if (endUserSockets.some((ws) => ws.readyState === WebSocket.READY_STATE_OPEN)) return true;
  return subscribers.some((s) => s.audience === "end_user");
}
