// A WebSocket client for e2e tests: real sockets (the `ws` package, so tests can set Cookie,
// Origin and Authorization on the handshake) against the `wrangler dev` from global-setup.ts.
// Frames are collected as they arrive; tests take them in order with bounded waits.
import WebSocket from "ws";
import { baseUrl } from "./harness.ts";

/** A parsed server frame (every frame of the native protocol is a JSON object with a type). */
export type Frame = { type: string } & Record<string, any>;

export interface SocketOptions {
  /** A Cookie header value, e.g. `session=...`. */
  cookie?: string;
  /** Sent as the handshake's Origin header (none by default, like a server or device client). */
  origin?: string;
  /** A secret key, sent as `Authorization: Bearer <key>`. */
  bearer?: string;
  headers?: Record<string, string>;
  /** How long the handshake may take. */
  timeoutMs?: number;
  /**
   * Flow control (docs/protocol.md): confirm message frames with `received` every 50 of them or
   * 256 KiB, as every client must (default true). False: a client that never confirms.
   */
  confirm?: boolean;
}

export interface Closed {
  code: number;
  reason: string;
}

/** A handshake the server answered with an HTTP response instead of 101. */
export interface Refusal {
  status: number;
  /** The parsed body, or null when it is not JSON (see text). */
  json: any;
  text: string;
}

const DEFAULT_WAIT_MS = 5_000;

export class SocketRefused extends Error {
  constructor(
    readonly path: string,
    readonly refusal: Refusal,
  ) {
    super(`WebSocket ${path} refused: HTTP ${refusal.status}: ${refusal.text}`);
  }
}

/**
 * Frames about the customer's place in line (routing) arrive whenever the org's router decides;
 * they are kept in `frames` but not queued for next()/take()/sync(), so flows that are not about
 * routing stay exact. Tests about routing read `frames`.
 */
const SIDE_FRAMES = new Set(["queue"]);

export class WsClient {
  /** Every text frame received, raw, in arrival order. */
  readonly raw: string[] = [];
  /** Every frame received, parsed, in arrival order. */
  readonly frames: Frame[] = [];
  /** Frames not yet taken by next()/take(), in arrival order. */
  private pending: { raw: string; frame: Frame }[] = [];
  private wakers = new Set<() => void>();
  private closeInfo: Closed | null = null;
  private closingFromHere = false;
  private error: Error | null = null;

  /** Message frames (and their characters) not yet confirmed with `received`. */
  private unconfirmed = 0;
  private unconfirmedChars = 0;
  /** `received` frames this client sent. */
  confirmations = 0;

  constructor(
    readonly ws: WebSocket,
    readonly path: string,
    readonly confirm = true,
  ) {
    ws.on("message", (data, isBinary) => {
      const text = isBinary ? `<binary ${(data as Buffer).length} bytes>` : data.toString();
      let frame: Frame;
      try {
        frame = JSON.parse(text) as Frame;
      } catch {
        frame = { type: "<not json>", text };
      }
      this.raw.push(text);
      this.frames.push(frame);
      if (confirm && frame.type === "message") this.confirmMessage(frame, text.length);
      if (!SIDE_FRAMES.has(frame.type as string)) this.pending.push({ raw: text, frame });
      this.wake();
    });
    ws.on("close", (code, reason) => {
      this.closeInfo = { code, reason: reason.toString() };
      this.wake();
    });
    ws.on("error", (err) => {
      this.error = err;
      this.wake();
    });
  }

  /** Confirms at least every 50 message frames or 256 KiB of them (the server closes with 4009 at 300 or 4 MiB). */
  private confirmMessage(frame: Frame, chars: number) {
    this.unconfirmed += 1;
    this.unconfirmedChars += chars;
    if (this.unconfirmed < 50 && this.unconfirmedChars < 256 * 1024) return;
    this.unconfirmed = 0;
    this.unconfirmedChars = 0;
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.confirmations += 1;
    this.ws.send(JSON.stringify({ type: "received", seq: frame.message?.seq }));
  }

  get closed(): Closed | null {
    return this.closeInfo;
  }

  /** Sends a frame: objects as JSON, strings as they are. */
  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /**
   * Takes the first not-yet-taken frame (matching `pred`, if given), waiting up to timeoutMs.
   * Frames before it that do not match stay pending for later calls.
   */
  async next(pred: (f: Frame) => boolean = () => true, timeoutMs = DEFAULT_WAIT_MS): Promise<Frame> {
    return (await this.nextEntry(pred, timeoutMs)).frame;
  }

  /** Takes the next frame of this type. */
  nextOfType(type: string, timeoutMs = DEFAULT_WAIT_MS): Promise<Frame> {
    return this.next((f) => f.type === type, timeoutMs);
  }

  /** Takes exactly the next n pending frames, whatever they are, in arrival order. */
  async take(n: number, timeoutMs = DEFAULT_WAIT_MS): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    const out: Frame[] = [];
    for (let i = 0; i < n; i++) out.push(await this.next(undefined, Math.max(1, deadline - Date.now())));
    return out;
  }

  /** The frames not taken yet (a copy). */
  unread(): Frame[] {
    return this.pending.map((p) => p.frame);
  }

  /**
   * A barrier: sends the exact ping string and waits for its pong, which the server writes
   * after whatever it had already sent on this socket. Returns the frames that were pending
   * before the pong (and leaves them pending), so a test can assert nothing unexpected arrived.
   */
  async sync(timeoutMs = DEFAULT_WAIT_MS): Promise<Frame[]> {
    const before = this.pending.length;
    this.send('{"type":"ping"}');
    const pong = await this.nextEntry((f) => f.type === "pong", timeoutMs, before);
    if (pong.raw !== '{"type":"pong"}') throw new Error(`unexpected pong ${pong.raw}`);
    return this.unread();
  }

  /**
   * Waits (bounded) for the server to close the socket, and returns the code and reason of the
   * server's Close frame. Once that frame is in (the socket is CLOSING and this side did not start
   * the close), the TCP connection is dropped from this side rather than waiting for the server to
   * drop it: `wrangler dev` takes ~10 s to end the connection after an object closes a socket
   * while it is still being upgraded, which would otherwise delay the `close` event.
   */
  async waitClosed(timeoutMs = DEFAULT_WAIT_MS): Promise<Closed> {
    await this.until(() => {
      if (this.closeInfo) return true;
      if (this.ws.readyState === WebSocket.CLOSING && !this.closingFromHere) this.ws.terminate();
      return false;
    }, timeoutMs, "close", false, 20);
    return this.closeInfo!;
  }

  /** Closes from the client side and waits for the closing handshake to finish. */
  async close(code = 1000, reason = "done"): Promise<Closed> {
    if (!this.closeInfo && this.ws.readyState !== WebSocket.CLOSING) {
      this.closingFromHere = true;
      this.ws.close(code, reason);
    }
    try {
      return await this.waitClosed();
    } catch {
      this.ws.terminate();
      return this.waitClosed();
    }
  }

  private async nextEntry(pred: (f: Frame) => boolean, timeoutMs: number, from = 0): Promise<{ raw: string; frame: Frame }> {
    let index = -1;
    const find = () => {
      index = this.pending.findIndex((p, i) => i >= from && pred(p.frame));
      return index >= 0;
    };
    await this.until(find, timeoutMs, "frame", true);
    return this.pending.splice(index, 1)[0]!;
  }

  /** Waits until done() holds, re-checking on every frame or close (and every pollMs, if given). */
  private async until(done: () => boolean, timeoutMs: number, what: string, failOnClose = false, pollMs?: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (done()) return;
      if (failOnClose && (this.closeInfo || this.error)) {
        throw new Error(`${this.path}: socket ${this.closeInfo ? `closed ${JSON.stringify(this.closeInfo)}` : `failed: ${this.error}`} while waiting for a ${what}; unread frames: ${JSON.stringify(this.unread())}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.path}: no ${what} within ${timeoutMs} ms; unread frames: ${JSON.stringify(this.unread())}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(wake, Math.min(left, pollMs ?? left));
        function wake() {
          clearTimeout(timer);
          resolve();
        }
        this.wakers.add(wake);
      });
    }
  }

  private wake() {
    const wakers = [...this.wakers];
    this.wakers.clear();
    for (const w of wakers) w();
  }
}

/** The ws:// URL of a path on the test server. */
export function wsUrl(path: string): string {
  const url = new URL(path, baseUrl());
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

function handshakeHeaders(opts: SocketOptions): Record<string, string> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.cookie) headers.cookie = opts.cookie;
  if (opts.bearer) headers.authorization = `Bearer ${opts.bearer}`;
  return headers;
}

/** Opens a socket: resolves once upgraded, or throws SocketRefused with the HTTP answer. */
export function openSocket(path: string, opts: SocketOptions = {}): Promise<WsClient> {
  const ws = new WebSocket(wsUrl(path), {
    headers: handshakeHeaders(opts),
    ...(opts.origin ? { origin: opts.origin } : {}),
    handshakeTimeout: opts.timeoutMs ?? 10_000,
  });
  const client = new WsClient(ws, path, opts.confirm ?? true);
  return new Promise<WsClient>((resolve, reject) => {
    ws.once("open", () => resolve(client));
    ws.once("unexpected-response", (req, res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json = null;
        try {
          json = JSON.parse(text);
        } catch {
          // Not JSON: see text.
        }
        req.destroy();
        reject(new SocketRefused(path, { status: res.statusCode ?? 0, json, text }));
      });
      res.on("error", reject);
    });
    ws.once("error", reject);
  });
}

/** Expects the handshake to be refused and returns the HTTP answer (throws if it upgrades). */
export async function refusedSocket(path: string, opts: SocketOptions = {}): Promise<Refusal> {
  let client: WsClient;
  try {
    client = await openSocket(path, opts);
  } catch (err) {
    if (err instanceof SocketRefused) return err.refusal;
    throw err;
  }
  await client.close();
  throw new Error(`WebSocket ${path} was accepted; expected a refusal`);
}

/** Tracks sockets so a test file can close whatever it opened (afterEach(sockets.closeAll)). */
export class SocketPool {
  private readonly open = new Set<WsClient>();

  async connect(path: string, opts: SocketOptions = {}): Promise<WsClient> {
    const client = await openSocket(path, opts);
    this.open.add(client);
    return client;
  }

  closeAll = async (): Promise<void> => {
    const all = [...this.open];
    this.open.clear();
    await Promise.all(all.map((c) => (c.closed ? null : c.close().catch(() => c.ws.terminate()))));
  };
}
