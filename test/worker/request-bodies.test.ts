// B3: JSON request bodies whose Content-Length lies, and bodies that stall. Over real HTTP,
// `wrangler dev`'s local proxy waits for the declared bytes before the Worker sees the request, so
// these run here, inside workerd, with request bodies that are streams the test controls: through
// the Worker's real entry point (`exports.default.fetch`, the production 10 s deadline) and through
// the app's own fetch with a short deadline (`BODY_READ_TIMEOUT_MS`), where the test can also see
// how much of the stream was read and whether the Worker cancelled it.
import { createExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BODY_READ_TIMEOUT_MS, MAX_BODY_BYTES } from "../../src/http/body";
import app from "../../src/index";
import { BASE, newOrg } from "./helpers";

/** A request body the test controls: `chunks` in order, then the end, or (stall) nothing ever again. */
function controlledBody(chunks: Uint8Array[], then: "end" | "stall") {
  const seen = { pulled: 0, cancelled: false };
  let i = 0;
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (i < chunks.length) {
          seen.pulled++;
          controller.enqueue(chunks[i++]!);
        } else if (then === "end") controller.close();
        else return new Promise<void>(() => {});
      },
      cancel() {
        seen.cancelled = true;
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, seen };
}

const utf8 = (s: string) => new TextEncoder().encode(s);

function sendRequest(body: ReadableStream<Uint8Array>, contentLength: number | null) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (contentLength !== null) headers["content-length"] = String(contentLength);
  return new Request(`${BASE}/api/chat/send`, { method: "POST", headers, body });
}

/** The app's own fetch, with a test-only deadline. */
const appFetch = (req: Request, deadlineMs: number) => app.fetch(req, { ...env, BODY_READ_TIMEOUT_MS: String(deadlineMs) }, createExecutionContext());

async function answer(res: Response) {
  return { status: res.status, body: (await res.json()) as { error: { code: string; message: string; retryable: boolean } } };
}

const endUsers = async (externalId: string) => (await env.DB.prepare("SELECT COUNT(*) AS n FROM end_users WHERE external_id = ?").bind(externalId).first<{ n: number }>())!.n;

describe("B3 request bodies that lie or stall", () => {
  it.concurrent(
    "a body that stalls (behind a Content-Length it never fulfils, or chunked) gets 408 request_timeout at the 10 s deadline, not a hang; nothing is stored",
    async () => {
      const o = await newOrg();
      const json = (visitorId: string) => utf8(JSON.stringify({ apiKey: o.pk, visitorId, visitorName: "Stalled", message: "hello" }));
      const started = Date.now();
      const [lying, chunked] = await Promise.all([
        exports.default.fetch(sendRequest(controlledBody([json("stall-cl")], "stall").stream, json("stall-cl").byteLength + 100)),
        exports.default.fetch(sendRequest(controlledBody([json("stall-chunked")], "stall").stream, null)),
      ]);
      const elapsed = Date.now() - started;
      for (const res of [lying, chunked]) {
        expect(await answer(res)).toEqual({ status: 408, body: { success: false, error: { code: "request_timeout", message: "the request body did not arrive within 10 s", retryable: true } } });
      }
      expect(elapsed).toBeGreaterThanOrEqual(BODY_READ_TIMEOUT_MS - 50);
      expect(elapsed).toBeLessThan(BODY_READ_TIMEOUT_MS + 5_000);
      expect(await endUsers("stall-cl")).toBe(0);
      expect(await endUsers("stall-chunked")).toBe(0);
    },
    BODY_READ_TIMEOUT_MS + 15_000,
  );

  it.concurrent("the deadline covers the whole body: at it the Worker answers 408 and cancels the stream; a body that arrives in time is handled", async () => {
    const o = await newOrg();
    const json = utf8(JSON.stringify({ apiKey: o.pk, visitorId: "in-time", visitorName: "On time", message: "hello" }));
    const stalled = controlledBody([json.subarray(0, 10)], "stall");
    const started = Date.now();
    expect(await answer(await appFetch(sendRequest(stalled.stream, json.byteLength), 300))).toMatchObject({ status: 408, body: { error: { code: "request_timeout", retryable: true } } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(stalled.seen.cancelled).toBe(true);

    // The same request, all of its bytes in three chunks, under a deadline it can meet.
    const whole = controlledBody([json.subarray(0, 10), json.subarray(10, 20), json.subarray(20)], "end");
    const ok = await appFetch(sendRequest(whole.stream, json.byteLength), 5_000);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ success: true });
    expect(await endUsers("in-time")).toBe(1);
  });

  it.concurrent("a Content-Length that differs from the body: 400 content_length_mismatch either way (never parsed as a prefix); past 64 KiB, 413 payload_too_large after reading no more than 64 KiB and a chunk, the stream cancelled; nothing stored", async () => {
    const o = await newOrg();
    const json = utf8(JSON.stringify({ apiKey: o.pk, visitorId: "lying-cl", visitorName: "Liar", message: "hello" }));

    // Declares fewer bytes than it sends (the first 10 would be invalid JSON: not what is answered).
    const smaller = await answer(await appFetch(sendRequest(controlledBody([json], "end").stream, 10), 5_000));
    expect(smaller).toEqual({ status: 400, body: { success: false, error: { code: "content_length_mismatch", message: `Content-Length says 10 bytes; the body had ${json.byteLength}`, retryable: false } } });
    // Declares more than it sends, then ends.
    const larger = await answer(await appFetch(sendRequest(controlledBody([json], "end").stream, json.byteLength + 1), 5_000));
    expect(larger).toEqual({ status: 400, body: { success: false, error: { code: "content_length_mismatch", message: `Content-Length says ${json.byteLength + 1} bytes; the body had only ${json.byteLength}`, retryable: false } } });
    // The same through the Worker's real entry point.
    const viaEntry = await answer(await exports.default.fetch(sendRequest(controlledBody([json], "end").stream, 10)));
    expect(viaEntry).toMatchObject({ status: 400, body: { error: { code: "content_length_mismatch" } } });

    // Declares 100 bytes, sends 1 MiB in 16 KiB chunks: the cap applies to what arrives.
    const chunk = new Uint8Array(16 * 1024).fill(0x20);
    const huge = controlledBody(Array.from({ length: 64 }, () => chunk), "end");
    const tooLarge = await answer(await appFetch(sendRequest(huge.stream, 100), 5_000));
    expect(tooLarge).toEqual({ status: 413, body: { success: false, error: { code: "payload_too_large", message: `request body is larger than ${MAX_BODY_BYTES} bytes`, retryable: false } } });
    expect(huge.seen.pulled).toBe(MAX_BODY_BYTES / chunk.byteLength + 1);
    expect(huge.seen.cancelled).toBe(true);

    expect(await endUsers("lying-cl")).toBe(0);
  });
});

describe("B3 Engine.IO poll bodies (read whole by the Worker, never streamed on to the session)", () => {
  const poll = (sid?: string) => `${BASE}/socket.io/?EIO=4&transport=polling${sid ? `&sid=${sid}` : ""}`;
  async function openSession(): Promise<string> {
    const res = await exports.default.fetch(poll());
    return JSON.parse((await res.text()).slice(1)).sid;
  }
  const post = (sid: string, body: ReadableStream<Uint8Array>) => new Request(poll(sid), { method: "POST", headers: { "content-type": "text/plain;charset=UTF-8" }, body });

  it.concurrent("a stalled body gets 408 at the deadline and ends the session; an oversized chunked one gets 413 after reading no more than maxPayload and a chunk, the stream cancelled; one in time is handled", async () => {
    const stalledSid = await openSession();
    const stalled = controlledBody([utf8("4")], "stall");
    expect((await appFetch(post(stalledSid, stalled.stream), 300)).status).toBe(408);
    expect(stalled.seen.cancelled).toBe(true);
    expect(await (await exports.default.fetch(poll(stalledSid))).json()).toEqual({ code: 1, message: "Session ID unknown" });

    const bigSid = await openSession();
    const chunk = new Uint8Array(64 * 1024).fill(0x78);
    const big = controlledBody([utf8("4"), ...Array.from({ length: 40 }, () => chunk)], "end");
    expect((await appFetch(post(bigSid, big.stream), 5_000)).status).toBe(413);
    expect(big.seen.pulled).toBe(1 + Math.ceil(1_000_000 / chunk.byteLength));
    expect(big.seen.cancelled).toBe(true);
    expect(await (await exports.default.fetch(poll(bigSid))).json()).toEqual({ code: 1, message: "Session ID unknown" });

    // A CONNECT in two chunks arrives within the deadline: the session answers it.
    const okSid = await openSession();
    const ok = await appFetch(post(okSid, controlledBody([utf8("4"), utf8("0")], "end").stream), 5_000);
    expect([ok.status, await ok.text()]).toEqual([200, "ok"]);
    expect(await (await exports.default.fetch(poll(okSid))).text()).toMatch(/^40\{"sid":/);
  });
});
