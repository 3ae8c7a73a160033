// The outbox: every feedback goes through it, one send at a time, in the order it was given.
//
// - An item stays in storage (localStorage in a browser) until the server has acknowledged it, so
//   feedback given offline, or while the page was closing, is sent later: when the browser is online
//   again, on page hide (fetch keepalive) or by the next page that opens the same outbox. Every send
//   asks for keepalive, so the one in flight when the page closes completes too.
// - A retry reuses the item's feedback_id, so the server never stores it twice.
// - One vote per user: a new item for the same token and key replaces an earlier one still waiting.
import type { CreateFeedbackRequestJson } from "./gen/feedback/v1/feedback_service_pb.js";
import type { FeedbackJson } from "./gen/feedback/v1/feedback_pb.js";
import { retryDelay, type RetryPolicy } from "./backoff.js";
import { FeedbackError } from "./errors.js";
import type { Sender } from "./sender.js";

/** What a send came to. */
export type SendResult =
  /** The server stored it; `feedback` is the record as stored. */
  | { status: "stored"; feedbackId: string; feedback: FeedbackJson }
  /** Offline: kept on this device and sent when the browser is online again. */
  | { status: "queued"; feedbackId: string }
  /** A later vote of the same user on the same key replaced it before it was sent. */
  | { status: "replaced"; feedbackId: string; replacedBy: string };

/** What happened to an item; `subscribe` to hear about items sent later, e.g. after being offline. */
export type OutboxEvent =
  | { type: "sending"; feedbackId: string }
  | { type: "queued"; feedbackId: string }
  | { type: "stored"; feedbackId: string; feedback: FeedbackJson }
  | { type: "replaced"; feedbackId: string; replacedBy: string }
  | { type: "failed"; feedbackId: string; error: FeedbackError };

/** The part of the Web Storage API the outbox uses. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** One feedback waiting to be sent. */
export interface OutboxItem {
  feedbackId: string;
  request: CreateFeedbackRequestJson;
  token?: string | undefined;
  /** Items of one slot (token and key) replace each other: the server keeps one vote per user and key. */
  slot?: string | undefined;
  queuedAt: number;
}

/** What the outbox needs from its surroundings; the defaults use the browser's (or Node's) globals. */
export interface Environment {
  storage: StorageLike | undefined;
  isOffline(): boolean;
  /** Calls `onOnline` when the browser is online again and `onHide` when the page is hidden; returns an undo. */
  listen(onOnline: () => void, onHide: () => void): () => void;
  sleep(ms: number): Promise<void>;
  now(): number;
  random(): number;
}

export interface OutboxOptions {
  storageKey: string;
  retry?: RetryPolicy | undefined;
  timeoutMs?: number | undefined;
  /** At most this many items are kept; the oldest go first (default 100). */
  maxItems?: number | undefined;
  environment?: Partial<Environment> | undefined;
}

function browserStorage(): StorageLike | undefined {
  try {
    return globalThis.localStorage ?? undefined; // throws in sandboxed frames, absent in Node
  } catch {
    return undefined;
  }
}

export function defaultEnvironment(): Environment {
  return {
    storage: browserStorage(),
    isOffline: () => globalThis.navigator?.onLine === false,
    listen(onOnline, onHide) {
      const target = globalThis as unknown as Partial<EventTarget>;
      if (typeof target.addEventListener !== "function") return () => {};
      const visibility = (): void => {
        if (globalThis.document?.visibilityState === "hidden") onHide();
      };
      target.addEventListener("online", onOnline);
      target.addEventListener("pagehide", onHide);
      globalThis.document?.addEventListener("visibilitychange", visibility);
      return () => {
        target.removeEventListener?.("online", onOnline);
        target.removeEventListener?.("pagehide", onHide);
        globalThis.document?.removeEventListener("visibilitychange", visibility);
      };
    },
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    now: () => Date.now(),
    random: Math.random,
  };
}

interface Waiter {
  resolve(result: SendResult): void;
  reject(error: FeedbackError): void;
}

function isItem(value: unknown): value is OutboxItem {
  const item = value as OutboxItem | null;
  return typeof item?.feedbackId === "string" && typeof item.request === "object" && item.request !== null;
}

export class Outbox {
  private readonly env: Environment;
  private items: OutboxItem[];
  private readonly waiters = new Map<string, Waiter>();
  private readonly listeners = new Set<(event: OutboxEvent) => void>();
  /** Ids this outbox finished (stored, failed, replaced): not written back when merging with storage. */
  private readonly finished = new Set<string>();
  private readonly sentOnHide = new Set<string>();
  private readonly unlisten: () => void;
  private inFlight: OutboxItem | undefined;
  private pumping: Promise<void> | undefined;
  private again = false;
  private parked = false;
  /** Items whose callers and listeners already heard "queued". */
  private readonly announced = new Set<string>();

  constructor(
    private readonly sender: Sender,
    private readonly options: OutboxOptions,
  ) {
    this.env = { ...defaultEnvironment(), ...options.environment };
    this.items = this.load();
    this.unlisten = this.env.listen(
      () => void this.flush(),
      () => this.sendOnHide(),
    );
    if (this.items.length > 0) void this.flush(); // left by an earlier page: send them now
  }

  /** Items not yet acknowledged by the server. */
  get size(): number {
    return this.items.length;
  }

  subscribe(listener: (event: OutboxEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Keeps the item until the server has it; resolves once it is stored, queued (offline) or replaced. */
  add(item: OutboxItem): Promise<SendResult> {
    const result = new Promise<SendResult>((resolve, reject) => this.waiters.set(item.feedbackId, { resolve, reject }));
    if (item.slot !== undefined) {
      for (const earlier of this.items.filter((i) => i.slot === item.slot && i !== this.inFlight)) {
        this.settle(earlier, { status: "replaced", feedbackId: earlier.feedbackId, replacedBy: item.feedbackId });
      }
    }
    this.items.push(item);
    const maxItems = this.options.maxItems ?? 100;
    while (this.items.length > maxItems) {
      const oldest = this.items.find((i) => i !== this.inFlight) as OutboxItem;
      this.settle(oldest, new FeedbackError("resource_exhausted", `more than ${maxItems} feedback waiting to be sent; the oldest was dropped`));
    }
    this.save();
    void this.flush();
    return result;
  }

  /** Sends what is waiting, unless offline; resolves when the outbox is empty or parked. */
  flush(): Promise<void> {
    this.parked = false;
    if (this.pumping !== undefined) {
      this.again = true; // the running pump may be about to stop: it goes round once more
      return this.pumping;
    }
    this.pumping = (async () => {
      try {
        do {
          this.again = false;
          await this.pump();
        } while (this.again);
      } finally {
        this.pumping = undefined; // in the same step as the last check of `again`: no flush is lost
      }
    })();
    return this.pumping;
  }

  close(): void {
    this.unlisten();
  }

  // -- sending ---------------------------------------------------------------------------------

  private async pump(): Promise<void> {
    let failed = 0;
    let previous: OutboxItem | undefined;
    for (;;) {
      const item = this.items[0];
      if (item === undefined || this.parked) return;
      if (item !== previous) failed = 0;
      previous = item;
      if (this.env.isOffline()) return this.park();
      this.inFlight = item;
      this.announced.delete(item.feedbackId);
      this.emit({ type: "sending", feedbackId: item.feedbackId });
      let error: FeedbackError;
      try {
        // keepalive: a send in flight when the page closes (a vote, then the tab closed) still arrives.
        const feedback = await this.sender(item.request, {
          token: item.token,
          keepalive: true,
          timeoutMs: this.options.timeoutMs ?? 10000,
        });
        this.inFlight = undefined;
        this.settle(item, { status: "stored", feedbackId: item.feedbackId, feedback });
        continue;
      } catch (caught) {
        this.inFlight = undefined;
        error = caught instanceof FeedbackError ? caught : new FeedbackError("unknown", String(caught), { cause: caught });
      }
      if (!this.items.includes(item)) continue; // stored meanwhile by a send on page hide
      if (error.retryable && this.env.isOffline()) return this.park();
      failed += 1;
      const delay = error.retryable ? retryDelay(failed, error.retryDelayMs, this.options.retry, this.env.random) : undefined;
      if (delay === undefined) {
        this.settle(item, error);
      } else {
        await this.env.sleep(delay);
      }
    }
  }

  /** Offline: everything waits for the `online` event; callers hear "queued". */
  private park(): void {
    this.parked = true;
    for (const item of this.items) {
      if (this.announced.has(item.feedbackId)) continue;
      this.announced.add(item.feedbackId);
      this.waiters.get(item.feedbackId)?.resolve({ status: "queued", feedbackId: item.feedbackId });
      this.waiters.delete(item.feedbackId);
      this.emit({ type: "queued", feedbackId: item.feedbackId });
    }
  }

  /**
   * The page is being hidden (maybe closed): send what waits with fetch keepalive, which outlives the
   * page. Items stay stored until acknowledged, so whatever does not make it goes with the next page.
   * An item behind one in flight for the same slot waits, or the two votes could arrive out of order.
   */
  private sendOnHide(): void {
    if (this.env.isOffline()) return;
    for (const item of this.items) {
      if (item === this.inFlight || this.sentOnHide.has(item.feedbackId)) continue;
      if (item.slot !== undefined && item.slot === this.inFlight?.slot) continue;
      this.sentOnHide.add(item.feedbackId);
      this.sender(item.request, { token: item.token, keepalive: true, timeoutMs: this.options.timeoutMs ?? 10000 }).then(
        (feedback) => this.settle(item, { status: "stored", feedbackId: item.feedbackId, feedback }),
        () => this.sentOnHide.delete(item.feedbackId), // the pump (or the next page) tries again
      );
    }
  }

  /** The end of an item: out of the outbox, its caller answered, listeners told. Once only. */
  private settle(item: OutboxItem, outcome: SendResult | FeedbackError): void {
    if (!this.items.includes(item)) return;
    this.items = this.items.filter((i) => i !== item);
    this.finished.add(item.feedbackId);
    this.save();
    const waiter = this.waiters.get(item.feedbackId);
    this.waiters.delete(item.feedbackId);
    if (outcome instanceof FeedbackError) {
      waiter?.reject(outcome);
      this.emit({ type: "failed", feedbackId: item.feedbackId, error: outcome });
    } else {
      waiter?.resolve(outcome);
      if (outcome.status === "stored") this.emit({ type: "stored", feedbackId: item.feedbackId, feedback: outcome.feedback });
      if (outcome.status === "replaced") this.emit({ type: "replaced", feedbackId: item.feedbackId, replacedBy: outcome.replacedBy });
    }
  }

  private emit(event: OutboxEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        queueMicrotask(() => {
          throw error; // a listener's bug is reported, and does not stop the outbox
        });
      }
    }
  }

  // -- storage ---------------------------------------------------------------------------------

  private load(): OutboxItem[] {
    try {
      const stored: unknown = JSON.parse(this.env.storage?.getItem(this.options.storageKey) ?? "[]");
      return Array.isArray(stored) ? stored.filter(isItem) : [];
    } catch {
      return [];
    }
  }

  /** Writes this outbox's items, keeping those another tab added meanwhile. */
  private save(): void {
    if (this.env.storage === undefined) return;
    const mine = new Set(this.items.map((i) => i.feedbackId));
    const others = this.load().filter((i) => !mine.has(i.feedbackId) && !this.finished.has(i.feedbackId));
    try {
      this.env.storage.setItem(this.options.storageKey, JSON.stringify([...others, ...this.items]));
    } catch {
      // storage full or forbidden: the items still live in memory for as long as the page does
    }
  }
}
