import { describe, expect, it } from "vitest";
import { FeedbackError } from "../src/errors.js";
import { Outbox, type OutboxEvent, type OutboxItem } from "../src/outbox.js";
import { FakePage, network, ScriptedSender, settle, stored, unavailable } from "./fakes.js";

const KEY = "feedback-web:outbox:test";

function item(id: string, slot?: string, token = "fbt1.token"): OutboxItem {
  return { feedbackId: id, request: { feedback: { feedbackId: id, key: "thumbs" } }, token, slot, queuedAt: 0 };
}

function setUp() {
  const page = new FakePage();
  const sender = new ScriptedSender();
  const outbox = new Outbox(sender.send, { storageKey: KEY, environment: page });
  const events: OutboxEvent[] = [];
  outbox.subscribe((event) => events.push(event));
  const storedIds = (): string[] => JSON.parse(page.storage.getItem(KEY) ?? "[]").map((i: OutboxItem) => i.feedbackId);
  return { page, sender, outbox, events, storedIds };
}

describe("Outbox", () => {
  it("sends one item at a time, in order, and forgets each once stored", async () => {
    const { sender, outbox, storedIds } = setUp();
    const first = outbox.add(item("a"));
    const second = outbox.add(item("b"));
    await settle();
    expect(sender.ids()).toEqual(["a"]); // b waits for a: votes must not overtake each other
    expect(storedIds()).toEqual(["a", "b"]);
    sender.calls[0]!.answer(stored(sender.calls[0]!.request));
    expect(await first).toMatchObject({ status: "stored", feedbackId: "a" });
    await settle();
    expect(sender.ids()).toEqual(["a", "b"]);
    sender.calls[1]!.answer(stored(sender.calls[1]!.request));
    expect(await second).toMatchObject({ status: "stored", feedbackId: "b" });
    expect(storedIds()).toEqual([]);
    expect(sender.calls[0]!.options).toEqual({ token: "fbt1.token", keepalive: true, timeoutMs: 10000 });
  });

  it("retries UNAVAILABLE with the same request, honouring RetryInfo, until stored", async () => {
    const { page, sender, outbox } = setUp();
    const outcomes = [unavailable(), unavailable(2000), network()];
    sender.auto = (request) => outcomes.shift() ?? stored(request);
    expect(await outbox.add(item("a"))).toMatchObject({ status: "stored" });
    expect(sender.ids()).toEqual(["a", "a", "a", "a"]);
    expect(page.waits).toEqual([250, 2000, 1000]);
  });

  it("fails after the last attempt, and at once on an error no retry can fix", async () => {
    const { sender, outbox, events, storedIds } = setUp();
    sender.auto = () => unavailable();
    await expect(outbox.add(item("a"))).rejects.toMatchObject({ code: "unavailable" });
    expect(sender.calls).toHaveLength(4);
    sender.auto = () => new FeedbackError("unauthenticated", "the feedback token expired");
    await expect(outbox.add(item("b"))).rejects.toMatchObject({ code: "unauthenticated" });
    expect(sender.calls).toHaveLength(5);
    expect(events.filter((e) => e.type === "failed").map((e) => e.feedbackId)).toEqual(["a", "b"]);
    expect(storedIds()).toEqual([]);
  });

  it("queues while offline and sends when the browser is online again", async () => {
    const { page, sender, outbox, events, storedIds } = setUp();
    sender.auto = stored;
    page.offline = true;
    expect(await outbox.add(item("a"))).toEqual({ status: "queued", feedbackId: "a" });
    expect(sender.calls).toHaveLength(0);
    expect(storedIds()).toEqual(["a"]);
    page.goOnline();
    await settle();
    expect(sender.ids()).toEqual(["a"]);
    expect(events.map((e) => e.type)).toEqual(["queued", "sending", "stored"]);
    expect(storedIds()).toEqual([]);
  });

  it("queues an item whose send failed because the browser went offline meanwhile", async () => {
    const { page, sender, outbox } = setUp();
    sender.auto = () => {
      page.offline = true;
      return network();
    };
    expect(await outbox.add(item("a"))).toEqual({ status: "queued", feedbackId: "a" });
    sender.auto = stored;
    page.goOnline();
    await settle();
    expect(sender.ids()).toEqual(["a", "a"]);
    expect(outbox.size).toBe(0);
  });

  it("lets a newer vote of the same user and key replace one still waiting", async () => {
    const { page, sender, outbox, storedIds } = setUp();
    page.offline = true;
    const up = outbox.add(item("up", "token\nthumbs"));
    const other = outbox.add(item("other", "token\nreason"));
    expect(await up).toMatchObject({ status: "queued" });
    const down = outbox.add(item("down", "token\nthumbs"));
    expect(await down).toMatchObject({ status: "queued" });
    expect(await other).toMatchObject({ status: "queued" });
    expect(storedIds()).toEqual(["other", "down"]);
    sender.auto = stored;
    page.goOnline();
    await settle();
    expect(sender.ids()).toEqual(["other", "down"]);
  });

  it("never replaces the vote in flight: the newer one is sent after it", async () => {
    const { sender, outbox } = setUp();
    const up = outbox.add(item("up", "token\nthumbs"));
    await settle();
    const down = outbox.add(item("down", "token\nthumbs"));
    sender.calls[0]!.answer(stored(sender.calls[0]!.request));
    await settle();
    sender.calls[1]!.answer(stored(sender.calls[1]!.request));
    expect([(await up).status, (await down).status]).toEqual(["stored", "stored"]);
    expect(sender.ids()).toEqual(["up", "down"]);
  });

  it("sends what waits with fetch keepalive when the page is hidden, not overtaking a vote in flight", async () => {
    const { page, sender, outbox } = setUp();
    void outbox.add(item("up", "token\nthumbs"));
    void outbox.add(item("later", "token\nreason"));
    await settle();
    void outbox.add(item("down", "token\nthumbs"));
    page.hide();
    expect(sender.calls.map((c) => c.request.feedback?.feedbackId)).toEqual(["up", "later"]);
    expect(sender.calls.every((c) => c.options.keepalive)).toBe(true); // all survive the page closing
    page.hide(); // hidden again: nothing sent twice
    expect(sender.calls).toHaveLength(2);
  });

  it("leaves items in storage for the next page, which sends them", async () => {
    const first = setUp();
    first.page.offline = true;
    await first.outbox.add(item("a"));
    first.outbox.close();
    const sender = new ScriptedSender();
    sender.auto = stored;
    const page = Object.assign(new FakePage(), { storage: first.page.storage });
    const next = new Outbox(sender.send, { storageKey: KEY, environment: page });
    await next.flush();
    expect(sender.ids()).toEqual(["a"]);
    expect(page.storage.getItem(KEY)).toBe("[]");
  });

  it("keeps items another tab stored meanwhile", async () => {
    const { page, outbox, storedIds } = setUp();
    page.offline = true;
    await outbox.add(item("mine"));
    const stored = JSON.parse(page.storage.getItem(KEY)!);
    page.storage.setItem(KEY, JSON.stringify([...stored, item("other-tab")]));
    await outbox.add(item("mine-2"));
    expect(storedIds().sort()).toEqual(["mine", "mine-2", "other-tab"]);
  });

  it("ignores unreadable storage", async () => {
    const page = new FakePage();
    page.storage.setItem(KEY, "{not json");
    const outbox = new Outbox(new ScriptedSender().send, { storageKey: KEY, environment: page });
    expect(outbox.size).toBe(0);
    page.storage.setItem(KEY, JSON.stringify([{ nonsense: 1 }, item("ok")]));
    page.offline = true;
    expect(new Outbox(new ScriptedSender().send, { storageKey: KEY, environment: page }).size).toBe(1);
  });
});
