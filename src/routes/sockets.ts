/**
 * Native WebSocket entry points (docs/protocol.md). The Worker authenticates and resolves the
 * conversation, then hands the upgrade to the object with the identity in headers only the
 * Worker can set (any client-sent x-parley-* / x-partykit-* header is dropped first).
 *
 * - `/ws/visitor`: a public key or embed token plus the visitor's external id (origin-checked).
 * - `/ws/conversations/:id`: an agent's session cookie (same-origin only: no cross-site
 *   WebSocket hijacking) or a secret key.
 * - `/ws/org`: an agent's inbox: queue events and presence.
 */
import type { Context } from "hono";
import { z } from "zod";
import type { ChannelSettings, ConversationRef } from "../core/conversation-ref";
import { ApiError } from "../core/errors";
import type { Principal } from "../core/message";
import { agentConversation, conversationForVisitor, roomFor, requestOrigin } from "../conversation/directory";
import { router, type AppEnv } from "../http/app";
import { agentPrincipal, authenticateAgent, isSameOrigin } from "../http/auth";
import { parse } from "../http/body";
import { visitorName } from "./widget";

const VisitorQuery = z.object({
  key: z.string().max(200).optional(),
  embed_token: z.string().max(200).optional(),
  external_id: z.string().min(1).max(200).optional(),
  identity_hash: z.string().max(200).optional(),
  name: visitorName.optional(),
});

export const sockets = router()
  .get("/visitor", async (c) => {
    requireUpgrade(c);
    const q = parse(VisitorQuery, c.req.query());
    const { ref, channel, channelReadAt } = await conversationForVisitor(c.env, c.req.raw, { publicKey: q.key, embedToken: q.embed_token }, requestOrigin(c.req.raw), { external_id: q.external_id, identity_hash: q.identity_hash, display_name: q.name });
    const principal: Principal = { type: "end_user", id: ref.end_user.external_id, name: ref.end_user.display_name };
    return forward(c.req.raw, roomFor(c.env, ref), principal, ref, undefined, { typing_preview: channel.typing_preview, read_at: channelReadAt });
  })
  .get("/conversations/:id", async (c) => {
    requireUpgrade(c);
    const agent = await agentForSocket(c);
    const { ref, settings } = await agentConversation(c.env, agent.org_id, c.req.param("id"));
    return forward(c.req.raw, roomFor(c.env, ref), agentPrincipal(agent), ref, agent.auth_ref, settings);
  })
  .get("/org", async (c) => {
    requireUpgrade(c);
    const agent = await agentForSocket(c);
    return forward(c.req.raw, c.env.ORG_HUB.getByName(agent.org_id), agentPrincipal(agent), null, agent.auth_ref);
  });

function requireUpgrade(c: Context) {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") throw new ApiError("validation_failed", "expected a WebSocket upgrade");
}

async function agentForSocket(c: Context<AppEnv>) {
  const agent = await authenticateAgent(c);
  if (!agent) throw new ApiError("unauthorized", "log in, or send Authorization: Bearer sk_...");
  if (agent.via === "cookie" && !isSameOrigin(c)) throw new ApiError("origin_not_allowed", "cross-site WebSocket refused");
  return agent;
}

/**
 * `authRef`: what authenticated an agent's socket, so logout or revocation can close it.
 * `channel`: the conversation's channel settings as the lookup just read them, which spare a
 * newly woken room its own D1 read at connect (the room takes them only while they are fresher
 * than its own re-read interval).
 */
function forward(req: Request, stub: { fetch(r: Request): Promise<Response> }, principal: Principal, ref: ConversationRef | null, authRef?: string, channel?: ChannelSettings) {
  const headers = new Headers();
  for (const [k, v] of req.headers) if (!k.startsWith("x-parley-") && !k.startsWith("x-partykit-")) headers.set(k, v);
  headers.set("x-parley-principal", JSON.stringify(principal));
  if (ref) headers.set("x-parley-ref", JSON.stringify(ref));
  if (authRef) headers.set("x-parley-auth", authRef);
  if (channel) headers.set("x-parley-channel", JSON.stringify(channel));
  return stub.fetch(new Request(req.url, { method: "GET", headers }));
}
