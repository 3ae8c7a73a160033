// Test doubles for the outbox's surroundings: a Storage in memory, a switchable online state with the
// events a browser fires, timers that run at once (recording what they were asked to wait), and a
// sender whose every answer the test scripts. They stand in for the page, never for the service.
import type { CreateFeedbackRequestJson } from "../src/gen/feedback/v1/feedback_service_pb.js";
import type { FeedbackJson } from "../src/gen/feedback/v1/feedback_pb.js";
import { FeedbackError } from "../src/errors.js";
import type { Environment, StorageLike } from "../src/outbox.js";
import type { SendOptions, Sender } from "../src/sender.js";

export class MemoryStorage implements StorageLike {
  readonly data = new Map<string, string>();
  getItem(key: string): string | null {
    return this.data.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.data.set(key, value);
  }
}

export class FakePage implements Partial<Environment> {
  offline = false;
  readonly storage = new MemoryStorage();
  readonly waits: number[] = [];
  private onOnline: (() => void) | undefined;
  private onHide: (() => void) | undefined;
  isOffline = (): boolean => this.offline;
  listen = (onOnline: () => void, onHide: () => void): (() => void) => {
    this.onOnline = onOnline;
    this.onHide = onHide;
    return () => {
      this.onOnline = this.onHide = undefined;
    };
  };
  sleep = async (ms: number): Promise<void> => {
    this.waits.push(ms);
  };
  now = (): number => 0;
  random = (): number => 1;
  goOnline(): void {
    this.offline = false;
    this.onOnline?.();
  }
  hide(): void {
    this.onHide?.();
  }
}

export interface Call {
  request: CreateFeedbackRequestJson;
  options: SendOptions;
  answer(outcome: FeedbackJson | FeedbackError): void;
}

/** A sender that records each call and answers when the test says so (or at once, with `auto`). */
export class ScriptedSender {
  readonly calls: Call[] = [];
  auto: ((request: CreateFeedbackRequestJson) => FeedbackJson | FeedbackError) | undefined;
  readonly send: Sender = (request, options) =>
    new Promise((resolve, reject) => {
      const answer = (outcome: FeedbackJson | FeedbackError): void =>
        outcome instanceof FeedbackError ? reject(outcome) : resolve(outcome);
      this.calls.push({ request, options, answer });
      if (this.auto) answer(this.auto(request));
    });
  ids(): string[] {
    return this.calls.map((c) => c.request.feedback?.feedbackId ?? "");
  }
}

export const stored = (request: CreateFeedbackRequestJson): FeedbackJson => ({ ...request.feedback, revision: "1" });
export const unavailable = (retryDelayMs?: number): FeedbackError =>
  new FeedbackError("unavailable", "storage is unreachable", { retryDelayMs });
export const network = (): FeedbackError => new FeedbackError("unavailable", "could not reach", { network: true });

/** Lets pending promise callbacks run. */
export const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));
