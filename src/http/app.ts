import { Hono } from "hono";
import type { ConversationRef } from "../core/conversation-ref";
import type { Agent } from "./auth";

/**
 * Context shared by every route: the bindings, the agent once authenticated, and (after
 * requireAgentInConversation) the route's conversation in the agent's organisation.
 */
export type AppEnv = { Bindings: Env; Variables: { agent: Agent; conversation: ConversationRef } };

// Not strict: seed 001 calls `/api/conversations/` with a trailing slash.
export const router = () => new Hono<AppEnv>({ strict: false });
