/**
 * Delivery from a room or hub object to Socket.IO session objects: one RPC per frame per
 * session, chained per session so frames arrive in emission order. A session that answers
 * "gone" is reported to the caller, which forgets it.
 */
import type { SocketIoSession } from "./session";

export class RemoteFanout {
  private readonly chains = new Map<string, Promise<void>>();
  /** Stubs by session name (naming an object hashes its name every time). */
  private readonly stubs = new Map<string, DurableObjectStub<SocketIoSession>>();

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly env: Env,
  ) {}

  send(session: string, topic: string, frame: unknown, onGone: () => void): void {
    const next = (this.chains.get(session) ?? Promise.resolve()).then(async () => {
      try {
        if (!(await this.stub(session).deliver(topic, frame))) {
          this.stubs.delete(session);
          onGone();
        }
      } catch (err) {
        // A session object that failed to answer keeps its subscription: it checks seq
        // continuity on the next delivery and refetches what it missed.
        console.error(JSON.stringify({ at: "fanout.deliver", session, topic, error: String(err) }));
      }
    });
    this.chains.set(session, next);
    void next.finally(() => this.chains.get(session) === next && this.chains.delete(session));
    this.ctx.waitUntil(next);
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
