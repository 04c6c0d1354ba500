/**
 * The widget loader, served as both `/widget.js` (seed 000: `data-key="pk_…"`) and
 * `/chat-widget/embed.js` (seed 001: `data-embed-token="ew_…"`). A plain script: it works pasted
 * into a page, inserted by a framework at run time (seed 000's React snippet) and under a strict
 * Content-Security-Policy (no inline styles or scripts: styles are set through the CSSOM).
 *
 * It injects a launcher bubble and the widget iframe (`/chat-widget?...`), fixed bottom-right
 * 380x560 (full screen on small screens), keeps the visitor's id in localStorage
 * (`cw_sid_{token}`), shows the unread count, and removes everything again when its script tag is
 * removed (a React effect's cleanup). The iframe and this page talk by postMessage, each only to
 * the other's exact origin: see widget/README.md.
 */
(() => {
  const script =
    document.currentScript ??
    [...document.querySelectorAll("script[data-key],script[data-embed-token]")].find((s) => /\/(widget|chat-widget\/embed)\.js(\?|$)/.test(s.src));
  // A script removed before it ran (a React StrictMode remount) must not start a widget.
  if (!script || !script.isConnected) return;
  const previous = window.Parley;
  if (previous && previous.script !== script) {
    if (previous.script?.isConnected) return; // already running from another tag
    previous.destroy();
  }

  const token = script.getAttribute("data-embed-token")?.trim();
  const key = token ? null : script.getAttribute("data-key")?.trim();
  const credential = token || key;
  if (!credential) {
    console.error("Parley: the widget script needs data-key=\"pk_…\" or data-embed-token=\"ew_…\".");
    return;
  }
  const base = new URL(script.src, location.href);
  const parleyOrigin = base.origin;

  // The visitor's id: yours (data-session-id, a logged-in user) or a random one kept here.
  const sidKey = `cw_sid_${credential}`;
  let sessionId = script.getAttribute("data-session-id");
  if (!sessionId) {
    try {
      sessionId = localStorage.getItem(sidKey);
      if (!sessionId) {
        sessionId = `v_${[...crypto.getRandomValues(new Uint8Array(18))].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
        localStorage.setItem(sidKey, sessionId);
      }
    } catch {
      sessionId = null; // storage blocked: the widget keeps its own id (for this visit)
    }
  }

  const query = new URLSearchParams(token ? { embed_token: token } : { key });
  if (sessionId) query.set("session_id", sessionId);
  for (const name of ["customer_name", "title", "identity_hash"]) {
    const value = script.getAttribute(`data-${name.replace("_", "-")}`);
    if (value) query.set(name, value);
  }
  query.set("parent_origin", location.origin);
  // The page the visitor is on, for the agents (without the fragment, which may hold app state).
  query.set("page_url", location.href.split("#")[0].slice(0, 1000));
  query.set("launcher", "1");
  const src = `${parleyOrigin}/chat-widget?${query}`;

  // ---- elements, styled through the CSSOM (a page's CSP may forbid inline style attributes) ---

  const css = (el, rules) => {
    for (const [prop, value] of Object.entries(rules)) el.style.setProperty(prop, value, "important");
    return el;
  };
  const svg = (d) => {
    const ns = "http://www.w3.org/2000/svg";
    const icon = document.createElementNS(ns, "svg");
    icon.setAttribute("viewBox", "0 0 24 24");
    icon.setAttribute("width", "28");
    icon.setAttribute("height", "28");
    icon.setAttribute("aria-hidden", "true");
    icon.setAttribute("focusable", "false");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    path.setAttribute("fill", "currentColor");
    icon.append(path);
    return icon;
  };
  const CHAT_ICON = "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H8l-5 4V5a2 2 0 0 1 1-2z";
  const CLOSE_ICON = "M18.3 5.7 12 12l6.3 6.3-1.4 1.4L10.6 13.4 4.3 19.7 2.9 18.3 9.2 12 2.9 5.7l1.4-1.4 6.3 6.3 6.3-6.3z";

  const frame = css(document.createElement("iframe"), {
    position: "fixed",
    bottom: "92px",
    right: "20px",
    width: "380px",
    height: "560px",
    "max-height": "calc(100vh - 112px)",
    "max-width": "calc(100vw - 40px)",
    border: "0",
    "border-radius": "12px",
    "box-shadow": "0 8px 32px rgba(0,0,0,.18)",
    background: "#fff",
    "z-index": "2147483647",
    display: "none",
    margin: "0",
    padding: "0",
  });
  frame.id = "parley-frame";
  frame.title = "Chat";
  frame.src = src;
  frame.allow = "clipboard-write";

  const launcher = css(document.createElement("button"), {
    position: "fixed",
    bottom: "20px",
    right: "20px",
    width: "60px",
    height: "60px",
    "border-radius": "50%",
    border: "0",
    margin: "0",
    padding: "0",
    background: "#1f5fbf",
    color: "#fff",
    cursor: "pointer",
    "box-shadow": "0 4px 16px rgba(0,0,0,.25)",
    "z-index": "2147483646",
    display: "flex",
    "align-items": "center",
    "justify-content": "center",
  });
  launcher.type = "button";
  launcher.id = "parley-launcher";
  launcher.setAttribute("aria-controls", "parley-frame");
  launcher.setAttribute("aria-expanded", "false");
  const badge = css(document.createElement("span"), {
    position: "absolute",
    top: "-2px",
    right: "-2px",
    "min-width": "20px",
    height: "20px",
    padding: "0 5px",
    "box-sizing": "border-box",
    "border-radius": "10px",
    background: "#d93025",
    color: "#fff",
    font: "600 12px/20px system-ui,sans-serif",
    "text-align": "center",
    display: "none",
  });
  badge.setAttribute("aria-hidden", "true");
  badge.className = "parley-badge";

  let open = false;
  let unread = 0;
  let ready = false;
  const queue = []; // messages for the widget before it said parley:ready
  const small = matchMedia("(max-width: 480px)");

  function layout() {
    launcher.replaceChildren(svg(open ? CLOSE_ICON : CHAT_ICON), badge);
    launcher.setAttribute("aria-expanded", String(open));
    launcher.setAttribute("aria-label", open ? "Close chat" : unread ? `Open chat, ${unread} unread message${unread === 1 ? "" : "s"}` : "Open chat");
    badge.textContent = unread > 99 ? "99+" : String(unread);
    css(badge, { display: unread && !open ? "block" : "none" });
    css(frame, { display: open ? "block" : "none" });
    // Small screens: the chat takes the whole screen and closes from its own header.
    const full = small.matches;
    css(frame, full ? { inset: "0", width: "100%", height: "100%", "max-height": "none", "max-width": "none", "border-radius": "0" } : { inset: "auto", bottom: "92px", right: "20px", width: "380px", height: "560px", "max-height": "calc(100vh - 112px)", "max-width": "calc(100vw - 40px)", "border-radius": "12px" });
    css(launcher, { display: full && open ? "none" : "flex" });
  }

  /** Open or closed, across this tab's pages (sessionStorage; blocked storage: always closed). */
  function remembered(value) {
    try {
      if (value === undefined) return sessionStorage.getItem(`parley_open_${credential}`);
      sessionStorage.setItem(`parley_open_${credential}`, value);
    } catch {
      return null;
    }
  }

  function post(message) {
    if (!ready) queue.push(message);
    else frame.contentWindow?.postMessage(message, parleyOrigin);
  }

  function setOpen(value) {
    post({ type: value ? "parley:open" : "parley:close" });
  }

  launcher.addEventListener("click", () => setOpen(!open));

  const listeners = {};
  function onMessage(event) {
    // Only the widget frame, from Parley's origin.
    if (event.origin !== parleyOrigin || event.source !== frame.contentWindow) return;
    const data = event.data;
    if (!data || typeof data.type !== "string") return;
    switch (data.type) {
      case "parley:ready":
        if (!ready) {
          ready = true;
          clearTimeout(refusedTimer);
          for (const m of queue.splice(0)) frame.contentWindow?.postMessage(m, parleyOrigin);
          if (remembered() === "1") setOpen(true);
        }
        break;
      case "parley:opened":
      case "parley:closed": {
        const wasOpen = open;
        open = data.type === "parley:opened";
        remembered(open ? "1" : "0");
        layout();
        if (open) frame.focus();
        else if (wasOpen && (document.activeElement === frame || document.activeElement === document.body)) launcher.focus();
        break;
      }
      case "parley:unread":
        unread = Number.isInteger(data.count) && data.count > 0 ? data.count : 0;
        layout();
        break;
    }
    for (const fn of listeners[data.type] ?? []) fn(data);
  }
  window.addEventListener("message", onMessage);
  small.addEventListener("change", layout);

  // A frame the browser refuses (frame-ancestors: this origin is not allowed) still fires load,
  // but the widget never says parley:ready. Ask the server why, then say it in the console.
  let refusedTimer = null;
  frame.addEventListener("load", () => {
    if (ready) return;
    clearTimeout(refusedTimer);
    refusedTimer = setTimeout(diagnose, 1500);
  });

  async function diagnose() {
    if (ready) return;
    let why = "the widget page did not start (is the Parley server reachable, and does this page's Content-Security-Policy allow frames from it?)";
    try {
      const res = await fetch(src, { credentials: "omit" });
      const code = res.headers.get("x-parley-error");
      if (code === "origin_not_allowed" || res.status === 403) why = `this page's origin ${location.origin} is not in the channel's allowed origins (Parley answered 403); add it in the channel's settings`;
      else if (res.status === 401 || res.status === 404) why = `the ${token ? "embed token" : "public key"} is unknown or revoked (Parley answered ${res.status})`;
    } catch {
      // The diagnosis itself failed (network, CORS): the generic reason stands.
    }
    console.error(`Parley: the chat widget was refused: ${why}.`);
    destroy();
  }

  function destroy() {
    window.removeEventListener("message", onMessage);
    small.removeEventListener("change", layout);
    observer.disconnect();
    clearTimeout(refusedTimer);
    frame.remove();
    launcher.remove();
    if (window.Parley === api) delete window.Parley;
  }

  // Removing the script tag (seed 000's React cleanup) removes the widget.
  const observer = new MutationObserver(() => {
    if (!script.isConnected) destroy();
  });
  if (script.parentNode) observer.observe(script.parentNode, { childList: true });

  /** The host page's API: the same messages a page can post to the frame itself. */
  const api = {
    script,
    frame,
    origin: parleyOrigin,
    open: () => setOpen(true),
    close: () => setOpen(false),
    toggle: () => setOpen(!open),
    identify: (who) => post({ type: "parley:identify", name: who?.name, email: who?.email, attributes: who?.attributes }),
    on(type, fn) {
      (listeners[`parley:${type}`] ??= []).push(fn);
    },
    destroy,
  };
  window.Parley = api;

  layout();
  const mount = () => document.body.append(frame, launcher);
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
})();
