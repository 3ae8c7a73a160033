// <feedback-thumbs>: a thumbs-up/down widget for one AI answer, with an optional comment box and labels.
//
//   <script type="module" src="https://feedback.example.com/sdk/feedback-web.js"></script>
//   <feedback-thumbs base-url="https://feedback.example.com" token="fbt1...." comment labels="Wrong,Too long">
//   </feedback-thumbs>
//
// Attributes: base-url, token (minted by your backend for this answer), key (default "thumbs"), comment
// (show a comment box; the comment is sent with the vote), labels (comma-separated choices, sent as
// label feedback under label-key, default "reason"), prompt, up-text, down-text, comment-placeholder
// (the texts shown and read out). The host reflects its state in `state`: sending, saved, queued or error; it fires
// `feedback-state` events ({state, message, feedbackId}). Style it with the --feedback-* custom
// properties below, or its parts (::part(button), ::part(status), ...).
import { createFeedbackClient, newFeedbackId, type FeedbackClient, type FeedbackOptions } from "./client.js";
import type { FeedbackError } from "./errors.js";
import type { OutboxEvent, SendResult } from "./outbox.js";

export type WidgetState = "idle" | "sending" | "saved" | "queued" | "error";
type Vote = "up" | "down";

const clients = new Map<string, FeedbackClient>();

/** One client per service URL on a page, so every widget shares one outbox. */
export function sharedClient(baseUrl: string): FeedbackClient {
  let client = clients.get(baseUrl);
  if (client === undefined) {
    client = createFeedbackClient({ baseUrl });
    clients.set(baseUrl, client);
  }
  return client;
}

const THUMB =
  '<svg viewBox="0 0 24 24" width="1.2em" height="1.2em" aria-hidden="true" focusable="false"><path fill="currentColor" d="M2 21h4V9H2v12zm20-11a2 2 0 0 0-2-2h-6.3l1-4.6v-.3c0-.4-.2-.8-.4-1.1L13.2 1 6.6 7.6C6.2 8 6 8.5 6 9v10a2 2 0 0 0 2 2h9c.8 0 1.5-.5 1.8-1.2l3-7.1c.1-.2.2-.5.2-.7v-2z"/></svg>';

const STYLE = `
:host{display:inline-block;font:var(--feedback-font,inherit);color:var(--feedback-color,inherit)}
[part~=container]{display:flex;flex-wrap:wrap;align-items:center;gap:var(--feedback-gap,.5rem)}
button{font:inherit;color:inherit;cursor:pointer;background:var(--feedback-bg,transparent);border:1px solid var(--feedback-border,#c4c8cf);border-radius:var(--feedback-radius,6px);padding:.3em .6em;display:inline-flex;align-items:center;gap:.3em;min-height:2.2em}
button:hover{border-color:var(--feedback-accent,#2563eb)}
button:focus-visible,textarea:focus-visible{outline:2px solid var(--feedback-focus,var(--feedback-accent,#2563eb));outline-offset:2px}
button[aria-pressed=true]{background:var(--feedback-accent,#2563eb);border-color:var(--feedback-accent,#2563eb);color:var(--feedback-accent-contrast,#fff)}
button:disabled{opacity:.5;cursor:default}
[data-vote=down] svg{transform:rotate(180deg)}
[part~=comment]{display:flex;gap:var(--feedback-gap,.5rem);flex-basis:100%;align-items:flex-start}
textarea{font:inherit;flex:1;min-height:3em;border:1px solid var(--feedback-border,#c4c8cf);border-radius:var(--feedback-field-radius,6px);padding:.3em;background:var(--feedback-bg,transparent);color:inherit}
[part~=status]{flex-basis:100%;font-size:.9em;min-height:1.2em;color:var(--feedback-muted,#6b7280)}
:host([state=saved]) [part~=status]{color:var(--feedback-success,#15803d)}
:host([state=queued]) [part~=status]{color:var(--feedback-queued,#b45309)}
:host([state=error]) [part~=status]{color:var(--feedback-error,#b91c1c)}
[hidden]{display:none!important}
`;

const BaseElement: typeof HTMLElement =
  typeof HTMLElement === "undefined" ? (class {} as unknown as typeof HTMLElement) : HTMLElement;

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export class FeedbackThumbsElement extends BaseElement {
  static readonly observedAttributes = [
    "base-url",
    "token",
    "key",
    "comment",
    "comment-placeholder",
    "labels",
    "label-key",
    "prompt",
    "up-text",
    "down-text",
  ];

  /** The client used to send; default: one shared per base-url. Set it before the first click to use your own. */
  client: FeedbackClient | undefined;
  private vote: Vote | undefined;
  private label: string | undefined;
  /** The choices the server has, which the buttons show again after a failed send. */
  private saved: { vote?: Vote | undefined; label?: string | undefined } = {};
  /** The feedback whose outcome the widget shows: older sends finishing later do not change the state. */
  private current: string | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly root: ShadowRoot;

  constructor() {
    super();
    this.root = this.attachShadow({ mode: "open" });
  }

  /** What the widget shows now. */
  get state(): WidgetState {
    return (this.getAttribute("state") as WidgetState | null) ?? "idle";
  }

  connectedCallback(): void {
    this.render();
  }

  disconnectedCallback(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  attributeChangedCallback(name: string, before: string | null, after: string | null): void {
    if (before === after || !this.isConnected) return;
    if (name === "token" || name === "base-url") {
      // Another answer: start over.
      this.vote = this.label = this.current = undefined;
      this.saved = {};
      this.setState("idle", "");
      this.unsubscribe?.();
      this.unsubscribe = undefined;
    }
    this.render();
  }

  private text(name: string, fallback: string): string {
    return this.getAttribute(name) || fallback;
  }

  private labels(): string[] {
    return (this.getAttribute("labels") ?? "").split(",").map((l) => l.trim()).filter(Boolean);
  }

  private render(): void {
    const prompt = escapeHtml(this.text("prompt", "Was this helpful?"));
    const up = escapeHtml(this.text("up-text", "Helpful"));
    const down = escapeHtml(this.text("down-text", "Not helpful"));
    const labels = this.labels()
      .map((l) => `<button type="button" part="button label" data-label="${escapeHtml(l)}" aria-pressed="false">${escapeHtml(l)}</button>`)
      .join("");
    const status = this.root.querySelector("[part~=status]")?.textContent ?? "";
    const draft = this.root.querySelector("textarea")?.value ?? "";
    this.root.innerHTML = `<style>${STYLE}</style>
<div part="container" role="group" aria-label="${prompt}">
<span part="prompt">${prompt}</span>
<button type="button" part="button up" data-vote="up" aria-pressed="false">${THUMB}<span>${up}</span></button>
<button type="button" part="button down" data-vote="down" aria-pressed="false">${THUMB}<span>${down}</span></button>
<div part="labels" role="group" aria-label="Why?"${labels ? "" : " hidden"}>${labels}</div>
<form part="comment"${this.hasAttribute("comment") ? "" : " hidden"}><textarea aria-label="Comment" placeholder="${escapeHtml(this.text("comment-placeholder", "Add a comment (optional)"))}"></textarea><button type="submit" part="button send">Send</button></form>
<span part="status" role="status" aria-live="polite"></span>
</div>`;
    this.root.querySelector("textarea")!.value = draft;
    this.root.querySelector("[part~=status]")!.textContent = status;
    for (const button of this.root.querySelectorAll<HTMLButtonElement>("[data-vote]")) {
      button.addEventListener("click", () => this.castVote(button.dataset.vote as Vote));
    }
    for (const button of this.root.querySelectorAll<HTMLButtonElement>("[data-label]")) {
      button.addEventListener("click", () => this.chooseLabel(button.dataset.label as string));
    }
    this.root.querySelector("form")!.addEventListener("submit", (event) => {
      event.preventDefault();
      this.sendComment();
    });
    this.update();
  }

  /** Pressed states and what can be used now. */
  private update(): void {
    for (const button of this.root.querySelectorAll<HTMLButtonElement>("[data-vote]")) {
      button.setAttribute("aria-pressed", String(button.dataset.vote === this.vote));
    }
    for (const button of this.root.querySelectorAll<HTMLButtonElement>("[data-label]")) {
      button.setAttribute("aria-pressed", String(button.dataset.label === this.label));
    }
    // A comment goes with the vote (one feedback per user and key): it can be sent once there is a vote.
    const send = this.root.querySelector<HTMLButtonElement>("[part~=send]")!;
    send.disabled = this.vote === undefined;
    send.title = this.vote === undefined ? "Vote first, then send your comment" : "";
  }

  private castVote(vote: Vote): void {
    if (vote === this.vote && this.state !== "error") return; // already given; the server keeps one vote
    this.vote = vote;
    this.update();
    this.submit((client, options) => (vote === "up" ? client.thumbsUp : client.thumbsDown)({ ...options, key: this.key() }));
  }

  private sendComment(): void {
    const comment = this.root.querySelector("textarea")!.value.trim();
    const vote = this.vote;
    if (vote === undefined || !comment) return;
    this.submit((client, options) =>
      (vote === "up" ? client.thumbsUp : client.thumbsDown)({ ...options, key: this.key(), comment }),
    );
  }

  private chooseLabel(label: string): void {
    this.label = label;
    this.update();
    this.submit((client, options) => client.label(this.getAttribute("label-key") || "reason", label, options));
  }

  private key(): string {
    return this.getAttribute("key") || "thumbs";
  }

  private submit(send: (client: FeedbackClient, options: FeedbackOptions) => Promise<SendResult>): void {
    const baseUrl = this.getAttribute("base-url") ?? "";
    const token = this.getAttribute("token") ?? "";
    if (!baseUrl || !token) {
      this.setState("error", "This feedback widget needs the base-url and token attributes.");
      return;
    }
    const client = (this.client ??= sharedClient(baseUrl));
    this.unsubscribe ??= client.subscribe((event) => this.onEvent(event));
    // The widget shows the outcome of its latest send only; an older one finishing later changes nothing.
    const feedbackId = (this.current = newFeedbackId());
    this.setState("sending", "Sending…");
    send(client, { token, feedbackId }).then(
      (result) => {
        if (this.current !== feedbackId) return;
        if (result.status === "stored") this.stored();
        else if (result.status === "queued") this.setState("queued", "You are offline: kept on this device, sent when you are back online.");
      },
      (error: FeedbackError) => {
        if (this.current === feedbackId) this.failed(error);
      },
    );
  }

  private onEvent(event: OutboxEvent): void {
    if (event.feedbackId !== this.current) return;
    if (event.type === "stored") this.stored();
    else if (event.type === "failed") this.failed(event.error);
    else if (event.type === "sending" && this.state === "queued") this.setState("sending", "Back online: sending…");
  }

  private stored(): void {
    this.saved = { vote: this.vote, label: this.label };
    this.setState("saved", "Thanks, your feedback is saved.");
  }

  private failed(error: FeedbackError): void {
    ({ vote: this.vote, label: this.label } = this.saved); // the pressed buttons show what the server has
    this.update();
    const fields = error.fieldViolations.map((v) => `${v.field}: ${v.description}`).join("; ");
    this.setState("error", `Could not save: ${error.message}${fields ? ` (${fields})` : ""}`);
  }

  private setState(state: WidgetState, message: string): void {
    const status = this.root.querySelector("[part~=status]");
    if (state === this.state && message === status?.textContent) return; // heard twice: reply and event
    if (state === "idle") this.removeAttribute("state");
    else this.setAttribute("state", state);
    if (status) status.textContent = message;
    this.dispatchEvent(
      new CustomEvent("feedback-state", { bubbles: true, composed: true, detail: { state, message, feedbackId: this.current } }),
    );
  }
}

/** Registers <feedback-thumbs> (done on import when custom elements exist). */
export function defineFeedbackThumbs(name = "feedback-thumbs"): void {
  if (typeof customElements !== "undefined" && !customElements.get(name)) {
    customElements.define(name, FeedbackThumbsElement);
  }
}
