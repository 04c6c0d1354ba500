import { Hono } from "hono";
import type { Agent } from "./auth";

/** Context shared by every route: the bindings, and the agent once authenticated. */
export type AppEnv = { Bindings: Env; Variables: { agent: Agent } };

// Not strict: seed 001 calls `/api/conversations/` with a trailing slash.
export const router = () => new Hono<AppEnv>({ strict: false });
