import { describe, expect, it } from "vitest";
import { createFeedbackClient, feedbackJson, newFeedbackId } from "../src/client.js";
import { FakePage, ScriptedSender, stored } from "./fakes.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function setUp(token?: string) {
  const page = new FakePage();
  const sender = new ScriptedSender();
  sender.auto = stored;
  const client = createFeedbackClient({ baseUrl: "http://127.0.0.1:8080", token, sender: sender.send, environment: page });
  return { page, sender, client };
}

describe("createFeedbackClient", () => {
  it("builds each kind of feedback in proto JSON, with a new feedback id each", async () => {
    const { sender, client } = setUp("fbt1.t");
    await client.thumbsUp();
    await client.thumbsDown({ comment: "wrong refund window" });
    await client.score("helpfulness", 4);
    await client.label("reason", "too long");
    await client.comment("nice");
    await client.correct("The refund window is 30 days.");
    await client.thumbsUp({ key: "answer", traceId: "t-1", model: "bot", modelVersion: "v2", metadata: { page: "faq" } });
    const sent = sender.calls.map((c) => {
      const { feedbackId, ...rest } = c.request.feedback ?? {};
      expect(feedbackId).toMatch(UUID);
      return rest;
    });
    expect(sent).toEqual([
      { key: "thumbs", thumb: "THUMB_UP" },
      { key: "thumbs", thumb: "THUMB_DOWN", comment: "wrong refund window" },
      { key: "helpfulness", score: 4 },
      { key: "reason", label: "too long" },
      { key: "comment", comment: "nice" },
      { key: "correction", correction: "The refund window is 30 days." },
      { key: "answer", thumb: "THUMB_UP", traceId: "t-1", model: "bot", modelVersion: "v2", metadata: { page: "faq" } },
    ]);
    expect(new Set(sender.ids()).size).toBe(7);
    expect(sender.calls.every((c) => c.options.token === "fbt1.t")).toBe(true);
  });

  it("sends a score that is not finite as proto JSON's string, for the server to refuse by field", async () => {
    const { sender, client } = setUp();
    await client.score("helpfulness", Number.NaN);
    await client.score("helpfulness", -Infinity);
    expect(sender.calls.map((c) => c.request.feedback?.score)).toEqual(["NaN", "-Infinity"]);
  });

  it("keeps a given feedback id and a per-call token", async () => {
    const { sender, client } = setUp("fbt1.default");
    const result = await client.thumbsUp({ feedbackId: "retry-me", token: "fbt1.other" });
    expect(result).toMatchObject({ status: "stored", feedbackId: "retry-me" });
    expect(sender.calls[0]!.options.token).toBe("fbt1.other");
    expect(sender.calls[0]!.request.feedback).not.toHaveProperty("token");
  });

  it("replaces a queued vote by the same token's newer vote, but not another token's", async () => {
    const { page, sender, client } = setUp("fbt1.alice");
    page.offline = true;
    const replaced: string[] = [];
    client.subscribe((event) => event.type === "replaced" && replaced.push(event.feedbackId));
    const up = await client.thumbsUp();
    expect(up.status).toBe("queued");
    const bob = client.thumbsUp({ token: "fbt1.bob" });
    const down = client.thumbsDown();
    expect(replaced).toEqual([up.feedbackId]);
    expect(client.pending).toBe(2);
    page.goOnline();
    await client.flush();
    expect(sender.calls.map((c) => [c.options.token, c.request.feedback?.thumb])).toEqual([
      ["fbt1.bob", "THUMB_UP"],
      ["fbt1.alice", "THUMB_DOWN"],
    ]);
    // Queued or stored, depending on whether the outbox parked them before the page went online.
    expect((await bob).status).not.toBe("replaced");
    expect((await down).status).not.toBe("replaced");
  });

  it("makes version 4 UUIDs, also without crypto.randomUUID (pages that are not secure contexts)", () => {
    expect(newFeedbackId()).toMatch(UUID);
    const randomUUID = globalThis.crypto.randomUUID;
    try {
      Object.defineProperty(globalThis.crypto, "randomUUID", { value: undefined, configurable: true });
      const ids = Array.from({ length: 50 }, newFeedbackId);
      expect(ids.every((id) => UUID.test(id))).toBe(true);
      expect(new Set(ids).size).toBe(50);
    } finally {
      Object.defineProperty(globalThis.crypto, "randomUUID", { value: randomUUID, configurable: true });
    }
    expect(feedbackJson({ key: "k" }, { feedbackId: "x" })).toEqual({ key: "k", feedbackId: "x" });
  });
});
