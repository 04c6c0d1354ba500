import { Hono } from "hono";
export { ConversationRoom } from "./conversation/room";
export { OrgHub } from "./org/hub";

const app = new Hono<{ Bindings: Env }>();
app.get("/healthz", (c) => c.json({ ok: true }));
export default app;
