// Who the console acts as: a console link (a reviewer's or a read-only one, minted by CreateConsoleLink)
// or an operator's API key pasted into the sign-in form. Kept in sessionStorage, so it lasts while the
// tab is open and is gone when it closes; never in the URL the browser sends.

/** What the console signs in with. */
export interface Session {
  /** "link": a console link token (fbc1.…); "key": an API key. */
  kind: "link" | "key";
  /** Sent as `authorization: Bearer <token>`. */
  token: string;
  /** The project; from the link, or typed with a key ("" lets the server take the key's project). */
  project: string;
  /** Who claims and submits: the link's reviewer, or the name an operator typed. */
  reviewer: string;
  /** The one queue a bound link may use; "" for any. */
  queueId: string;
  /** A read-only (dashboard) link: no review. */
  readOnly: boolean;
  /** When the link stops working (ms since the epoch), 0 when unknown. */
  expiresAt: number;
}

const STORAGE_KEY = "feedback-console-session";

function base64UrlText(part: string): string {
  const standard = part.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(standard + "=".repeat((4 - (standard.length % 4)) % 4));
  return new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
}

function field(claims: Record<string, unknown>, ...names: string[]): unknown {
  for (const name of names) if (claims[name] !== undefined) return claims[name];
  return undefined;
}

/**
 * The session of a console link. The link's claims (project, reviewer, queue, read-only, expiry) are
 * read for display and navigation only: the server checks the signature and enforces them.
 */
export function sessionOfLink(token: string): Session {
  const session: Session = { kind: "link", token, project: "", reviewer: "", queueId: "", readOnly: false, expiresAt: 0 };
  const payload = token.split(".")[1];
  if (!payload) return session;
  try {
    const claims = JSON.parse(base64UrlText(payload)) as Record<string, unknown>;
    const text = (value: unknown): string => (typeof value === "string" ? value : "");
    session.project = text(field(claims, "prj", "project"));
    session.reviewer = text(field(claims, "rev", "reviewer", "sub"));
    session.queueId = text(field(claims, "q", "queue", "queue_id"));
    const read = field(claims, "read", "ro");
    const role = field(claims, "role");
    session.readOnly = read === true || read === 1 || role === "read";
    const exp = field(claims, "exp");
    session.expiresAt = typeof exp === "number" ? exp * 1000 : 0;
  } catch {
    // Not a payload we can read: the server still knows what the link allows.
  }
  return session;
}

/** The session of an operator's API key. */
export function sessionOfKey(token: string, project: string, reviewer: string): Session {
  return { kind: "key", token: token.trim(), project: project.trim(), reviewer: reviewer.trim(), queueId: "", readOnly: false, expiresAt: 0 };
}

/**
 * Takes a console link out of the URL fragment (`#link=<token>`): it is stored in sessionStorage and the
 * fragment is removed from the address bar (and from history), so the link is not left on screen,
 * in bookmarks or in screenshots. Returns the session to use, if any.
 */
export function startSession(location: Location, history: History, storage: Storage): Session | undefined {
  const match = /^#link=([^&]+)/.exec(location.hash);
  if (match) {
    const session = sessionOfLink(decodeURIComponent(match[1] as string));
    saveSession(storage, session);
    history.replaceState(null, "", `${location.pathname}${location.search}#/`);
    return session;
  }
  return loadSession(storage);
}

export function saveSession(storage: Storage, session: Session): void {
  storage.setItem(STORAGE_KEY, JSON.stringify(session));
}

export function loadSession(storage: Storage): Session | undefined {
  try {
    const stored = JSON.parse(storage.getItem(STORAGE_KEY) ?? "null") as Session | null;
    return stored && typeof stored.token === "string" && stored.token ? stored : undefined;
  } catch {
    return undefined;
  }
}

export function endSession(storage: Storage): void {
  storage.removeItem(STORAGE_KEY);
}
