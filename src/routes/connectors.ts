/**
 * `/api/connectors/:channel/messages`: a server (e.g. an SMS campaign tool) sends a message to a
 * customer of a connector channel by refId; it is stored in that customer's conversation and
 * delivered through the channel's connector (queued, in order, until one is registered).
 *   POST {refId, text, name?, client_msg_id?}  (secret key or an admin session)
 */
import { z } from "zod";
import { unwrap } from "../core/errors";
import { MessageInput, messageView } from "../core/message";
import { displayName } from "../core/names";
import { connectorChannel, openForVisitor, roomFor } from "../conversation/directory";
import { router } from "../http/app";
import { agentPrincipal, requireAgent } from "../http/auth";
import { parse, readJson } from "../http/body";

export const connectors = router()
  .use(requireAgent("owner", "admin"))
  .post("/:channel/messages", async (c) => {
    const b = await readJson(c, z.object({ refId: z.string().min(1).max(200), text: z.string(), name: displayName(200).optional(), client_msg_id: z.string().optional() }));
    const agent = c.get("agent");
    const channel = await connectorChannel(c.env, agent.org_id, c.req.param("channel").toLowerCase());
    const ref = await openForVisitor(c.env, channel, { external_id: b.refId, display_name: b.name });
    const draft = parse(MessageInput, { content: b.text, client_msg_id: b.client_msg_id });
    const { message, duplicate } = unwrap(await roomFor(c.env, ref).send(ref, agentPrincipal(agent), draft));
    return c.json({ ...messageView(message), conversation_id: ref.id, duplicate }, duplicate ? 200 : 201);
  });
