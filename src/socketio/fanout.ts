/**
 * Delivery from a room or hub object to Socket.IO session objects, in emission order per session.
 * At most one RPC per session is in flight: frames emitted meanwhile wait and go together in the
 * next RPC (`deliverMany`), so a busy conversation costs one RPC per session per round trip
 * rather than one per frame. A session that answers "gone" for a frame is reported to the
 * caller, which forgets it.
 */
import type { SocketIoSession } from "./session";

/** Most frames in one RPC (the rest wait for the next). */
export const MAX_FRAMES_PER_RPC = 100;

interface Queued {
  topic: string;
  frame: unknown;
  onGone: () => void;
}

export class RemoteFanout {
  /** Sessions with an RPC in flight -> the frames waiting for it to end. */
  private readonly waiting = new Map<string, Queued[]>();
  /** Stubs by session name (naming an object hashes its name every time). */
  private readonly stubs = new Map<string, DurableObjectStub<SocketIoSession>>();

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly env: Env,
  ) {}

  send(session: string, topic: string, frame: unknown, onGone: () => void): void {
    const queued = this.waiting.get(session);
    if (queued) return void queued.push({ topic, frame, onGone });
    this.waiting.set(session, []);
    this.ctx.waitUntil(this.drain(session, [{ topic, frame, onGone }]));
  }

  private async drain(session: string, batch: Queued[]): Promise<void> {
    while (batch.length > 0) {
      try {
        const delivered = await this.stub(session).deliverMany(batch.map((q) => [q.topic, q.frame] as [string, unknown]));
        batch.forEach((q, i) => {
          if (delivered[i]) return;
          this.stubs.delete(session);
          q.onGone();
        });
      } catch (err) {
        // A session object that failed to answer keeps its subscription: it checks seq
        // continuity on the next delivery and refetches what it missed.
        console.error(JSON.stringify({ at: "fanout.deliver", session, frames: batch.length, error: String(err) }));
      }
      const queued = this.waiting.get(session) ?? [];
      batch = queued.splice(0, MAX_FRAMES_PER_RPC);
      if (batch.length === 0) this.waiting.delete(session);
    }
  }

  private stub(session: string): DurableObjectStub<SocketIoSession> {
    let stub = this.stubs.get(session);
    if (!stub) {
      if (this.stubs.size >= 10_000) this.stubs.clear();
      stub = this.env.SOCKETIO.getByName(session);
      this.stubs.set(session, stub);
    }
    return stub;
  }
}
