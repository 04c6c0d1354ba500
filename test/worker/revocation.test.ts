/** S10: logging out or revoking a key closes every socket it opened; other sessions stay. */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BASE, call, dostiVisitor, eventually, newOrg, openSocket } from "./helpers";

async function loginAgain(email: string) {
  const login = await call("/auth/login", { body: { email, password: "correct horse battery" } });
  return { cookie: login.headers.get("set-cookie")!.split(";")[0]!, csrf: login.body.csrf_token as string };
}

describe("revocation closes sockets (S10)", () => {
  it("logout closes that session's conversation, inbox and Socket.IO connections with 1008; another session stays", async () => {
    const o = await newOrg();
    await dostiVisitor(o.pk, "s10-visitor").send("hello");
    const conv = await eventually(async () => (await o.agent.call("/api/conversations/?filter=all")).body[0], "listed");
    const other = await loginAgain(o.email);

    const room = await openSocket(`/ws/conversations/${conv.id}`, { cookie: o.cookie });
    const inbox = await openSocket("/ws/org", { cookie: o.cookie });
    const otherRoom = await openSocket(`/ws/conversations/${conv.id}`, { cookie: other.cookie });
    await room.next((f) => f.type === "ready");
    await inbox.next((f) => f.type === "ready");
    await otherRoom.next((f) => f.type === "ready");

    // A Socket.IO agent connection of the same session (raw Engine.IO over polling).
    const engine = async (q: string, body?: string) =>
      exports.default.fetch(new Request(`${BASE}/socket.io/?EIO=4&transport=polling${q}`, { method: body ? "POST" : "GET", headers: { cookie: o.cookie, ...(body ? { "content-type": "text/plain" } : {}) }, body }));
    const sid = JSON.parse((await (await engine("")).text()).slice(1)).sid as string;
    await engine(`&sid=${sid}`, "40");
    expect(await (await engine(`&sid=${sid}`)).text()).toMatch(/^40/);

    expect((await call("/auth/logout", { method: "POST", headers: { cookie: o.cookie, "x-csrftoken": o.csrf } })).status).toBe(200);
    expect((await room.waitClosed()).code).toBe(1008);
    expect((await inbox.waitClosed()).code).toBe(1008);
    const after = await engine(`&sid=${sid}`);
    expect(after.status).toBe(400);
    expect(await after.json()).toEqual({ code: 1, message: "Session ID unknown" });

    // The other session of the same agent is untouched.
    otherRoom.send({ type: "send", content: "still here" });
    expect(await otherRoom.next((f) => f.type === "ack")).toMatchObject({ duplicate: false });
  });

  it("revoking a secret key closes the sockets opened with it", async () => {
    const o = await newOrg();
    await dostiVisitor(o.pk, "s10-key").send("hello");
    const conv = await eventually(async () => (await o.agent.call("/api/conversations/?filter=all")).body[0], "listed");
    const bySecret = await openSocket(`/ws/conversations/${conv.id}`, { authorization: `Bearer ${o.sk}` });
    await bySecret.next((f) => f.type === "ready");
    const keys = await o.agent.call("/api/company/api-keys");
    const secret = keys.body.find((k: any) => k.kind === "secret");
    expect((await o.agent.call(`/api/company/api-keys/${secret.id}`, { method: "DELETE" })).status).toBe(200);
    expect((await bySecret.waitClosed()).code).toBe(1008);
  });
});
