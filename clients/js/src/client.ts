// createFeedbackClient: the browser (and Node 20) SDK of the feedback service.
import type { FeedbackJson } from "./gen/feedback/v1/feedback_pb.js";
import type { RetryPolicy } from "./backoff.js";
import { Outbox, type Environment, type OutboxEvent, type SendResult, type StorageLike } from "./outbox.js";
import { connectJsonSender, type Sender } from "./sender.js";

export interface FeedbackClientOptions {
  /** Where the service's HTTP face listens, e.g. "https://feedback.example.com" (FEEDBACK_HTTP_LISTEN). */
  baseUrl: string;
  /**
   * The end-user feedback token your backend minted for this AI call; sent as `Authorization: Bearer`,
   * the header the service reads over gRPC and HTTP alike. A call may override it (`options.token`).
   */
  token?: string | undefined;
  /** How calls reach the service; default: the Connect protocol with JSON over `fetch`. See `./connect`. */
  sender?: Sender | undefined;
  /** The fetch of the default sender (default: the global one). */
  fetch?: typeof fetch | undefined;
  /** Retries on UNAVAILABLE, RESOURCE_EXHAUSTED and network failures; RetryInfo from the server is honoured. */
  retry?: RetryPolicy | undefined;
  /** The deadline of one attempt (default 10 s). */
  timeoutMs?: number | undefined;
  /**
   * Where feedback waits until the server has it (offline, page closing). Default: `localStorage` in a
   * browser, memory elsewhere; `null`: memory only.
   */
  storage?: StorageLike | null | undefined;
  /** The storage key of the outbox (default: "feedback-web:outbox:" + baseUrl). */
  storageKey?: string | undefined;
  /** For tests: replaces parts of the browser environment (online state, timers, events). */
  environment?: Partial<Environment> | undefined;
}

/** Fields of a feedback besides its value; with a token, leave the bound ones (trace, model...) empty. */
export interface FeedbackOptions {
  /** What is judged, e.g. "thumbs" (default for votes), "helpfulness". The token must allow it. */
  key?: string;
  /** The idempotency key; default: a new random UUID, kept across retries. */
  feedbackId?: string;
  /** Overrides the client's token for this call. */
  token?: string;
  comment?: string;
  correction?: string;
  traceId?: string;
  spanId?: string;
  sessionId?: string;
  project?: string;
  model?: string;
  modelVersion?: string;
  metadata?: Record<string, string>;
}

export interface FeedbackClient {
  /** A thumbs-up (key "thumbs" unless given); a later vote of the same user replaces it on the server. */
  thumbsUp(options?: FeedbackOptions): Promise<SendResult>;
  thumbsDown(options?: FeedbackOptions): Promise<SendResult>;
  /** A finite number under `key`, e.g. score("helpfulness", 4). */
  score(key: string, value: number, options?: FeedbackOptions): Promise<SendResult>;
  /** One label under `key`, e.g. label("reason", "too long"). */
  label(key: string, label: string, options?: FeedbackOptions): Promise<SendResult>;
  /** A comment alone, under key "comment" unless given. To attach it to a vote, pass `comment` to thumbsUp/Down. */
  comment(text: string, options?: FeedbackOptions): Promise<SendResult>;
  /** The right answer, under key "correction" unless given. */
  correct(text: string, options?: FeedbackOptions): Promise<SendResult>;
  /** Any feedback in its proto JSON form; a feedback id is added when missing. */
  send(feedback: FeedbackJson, options?: { token?: string }): Promise<SendResult>;
  /** Sends what waits in the outbox now (unless offline). */
  flush(): Promise<void>;
  /** Feedback not yet acknowledged by the server (waiting, queued or in flight). */
  readonly pending: number;
  /** Hears what happens to each feedback, also to those sent later from the outbox; returns an undo. */
  subscribe(listener: (event: OutboxEvent) => void): () => void;
  /** Stops listening to page events; waiting feedback stays in storage for the next page. */
  close(): void;
}

/** A random UUID; crypto.randomUUID needs a secure context, getRandomValues does not. */
export function newFeedbackId(): string {
  const crypto = globalThis.crypto;
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = ((bytes[6] as number) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The proto JSON of a feedback: options first, then the value; empty fields left out. */
export function feedbackJson(value: FeedbackJson, options: FeedbackOptions = {}): FeedbackJson {
  const { token: _token, ...fields } = options;
  const feedback: FeedbackJson = { ...fields, ...value };
  feedback.feedbackId ||= newFeedbackId();
  return feedback;
}

export function createFeedbackClient(options: FeedbackClientOptions): FeedbackClient {
  const sender = options.sender ?? connectJsonSender(options.baseUrl, options.fetch);
  const environment: Partial<Environment> = { ...options.environment };
  if (options.storage !== undefined) environment.storage = options.storage ?? undefined;
  const outbox = new Outbox(sender, {
    storageKey: options.storageKey ?? `feedback-web:outbox:${options.baseUrl}`,
    retry: options.retry,
    timeoutMs: options.timeoutMs,
    environment,
  });

  const send = (feedback: FeedbackJson, token: string | undefined): Promise<SendResult> => {
    const complete = feedbackJson(feedback);
    const credential = token ?? options.token;
    return outbox.add({
      feedbackId: complete.feedbackId as string,
      request: { feedback: complete },
      token: credential,
      // With a token the server keeps one feedback per user and key: a newer one replaces a waiting one.
      slot: credential ? `${credential}\n${complete.key ?? ""}` : undefined,
      queuedAt: Date.now(),
    });
  };
  const build = (value: FeedbackJson, callOptions: FeedbackOptions = {}): Promise<SendResult> =>
    send(feedbackJson(value, callOptions), callOptions.token);
  // proto3 JSON spells non-finite doubles as strings; the server answers them with a field violation.
  const number = (value: number): NonNullable<FeedbackJson["score"]> =>
    Number.isFinite(value) ? value : (String(value) as "NaN" | "Infinity" | "-Infinity");

  return {
    thumbsUp: (o) => build({ key: o?.key ?? "thumbs", thumb: "THUMB_UP" }, o),
    thumbsDown: (o) => build({ key: o?.key ?? "thumbs", thumb: "THUMB_DOWN" }, o),
    score: (key, value, o) => build({ key, score: number(value) }, o),
    label: (key, label, o) => build({ key, label }, o),
    comment: (text, o) => build({ key: o?.key ?? "comment", comment: text }, o),
    correct: (text, o) => build({ key: o?.key ?? "correction", correction: text }, o),
    send: (feedback, o) => send(feedback, o?.token),
    flush: () => outbox.flush(),
    get pending() {
      return outbox.size;
    },
    subscribe: (listener) => outbox.subscribe(listener),
    close: () => outbox.close(),
  };
}
