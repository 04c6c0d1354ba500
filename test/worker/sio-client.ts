/** Test clients for Socket.IO sessions inside workerd (no socket.io-client: raw packets). */
import { exports } from "cloudflare:workers";
import { BASE } from "./helpers";

/** A raw Engine.IO v4 / Socket.IO v5 client over a WebSocket (text packets only). */
export async function openSio(query: string, connect?: Record<string, unknown>) {
  const res = await exports.default.fetch(new Request(`${BASE}/socket.io/?EIO=4&transport=websocket${query}`, { headers: { upgrade: "websocket" } }));
  const ws = res.webSocket;
  if (!ws) throw new Error(`no upgrade: ${res.status} ${await res.text()}`);
  ws.accept();
  const packets: string[] = [];
  const waiters: (() => void)[] = [];
  ws.addEventListener("message", (e) => {
    const p = String(e.data);
    if (p === "2") ws.send("3"); // pong
    packets.push(p);
    waiters.splice(0).forEach((w) => w());
  });
  const next = async (pred: (p: string) => boolean, timeoutMs = 5000): Promise<string> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = packets.find(pred);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; got ${JSON.stringify(packets)}`);
      await new Promise<void>((r) => (waiters.push(r), setTimeout(r, left)));
    }
  };
  const sid = JSON.parse((await next((p) => p.startsWith("0"))).slice(1)).sid as string;
  ws.send(connect ? `40${JSON.stringify(connect)}` : "40");
  const connected = JSON.parse((await next((p) => p.startsWith("40"))).slice(2)) as { sid: string; pid: string };
  /** The payloads of every `event` received, in order. */
  const events = (event: string) =>
    packets
      .filter((p) => p.startsWith("42"))
      .map((p) => JSON.parse(p.slice(2)) as [string, any])
      .filter(([name]) => name === event)
      .map(([, payload]) => payload);
  return { ws, sid, connected, packets, next, events };
}
