import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { buildSeries, runs, shownRange, timeTicks } from "../../console/src/chart.js";
import { answerOfDigit, controlOf, feedbackOf, missing, neighbour, scoreProblem, type Answer } from "../../console/src/controls.js";
import { sessionOfKey, sessionOfLink, startSession } from "../../console/src/session.js";
import { agreementWords, countdown, pValue, signed, verdict } from "../../console/src/stats.js";
import { ComparedMetric, KeyComparisonSchema, ThumbStatsSchema } from "../../src/gen/feedback/v1/aggregates_pb.js";
import { FeedbackKeyKind, FeedbackKeySchema } from "../../src/gen/feedback/v1/feedback_keys_pb.js";
import { Thumb } from "../../src/gen/feedback/v1/feedback_pb.js";

describe("verdict", () => {
  const thumbs = (changes: object) =>
    create(KeyComparisonSchema, {
      key: "thumbs",
      metric: ComparedMetric.POSITIVE_RATE,
      difference: 0.16596,
      pValue: 0.0117,
      sampleSizeA: 99n,
      sampleSizeB: 101n,
      test: "two_proportion_z",
      ...changes,
    });

  it("says which version is better, by how much, how sure and on how many votes", () => {
    expect(verdict(thumbs({}), "v7", "v8")).toBe("v8 is better than v7 on thumbs: +16.6 points, p = 0.012, 99 vs 101 votes");
    expect(verdict(thumbs({ difference: -0.05, pValue: 0.0004 }), "v7", "v8")).toBe(
      "v8 is worse than v7 on thumbs: \u22125.0 points, p < 0.001, 99 vs 101 votes",
    );
    expect(verdict(thumbs({ pValue: 0.43 }), "v7", "v8")).toBe("No clear difference on thumbs: +16.6 points, p = 0.43, 99 vs 101 votes");
  });

  it("turns around for scores where lower is better, and says when a side has no data", () => {
    const latency = create(KeyComparisonSchema, {
      key: "effort",
      metric: ComparedMetric.SCORE_MEAN,
      difference: 0.5,
      pValue: 0.01,
      sampleSizeA: 30n,
      sampleSizeB: 40n,
    });
    expect(verdict(latency, "v1", "v2", false)).toBe("v2 is worse than v1 on effort: +0.50 in mean score, p = 0.01, 30 vs 40 scores");
    expect(verdict(thumbs({ sampleSizeA: 0n, pValue: 1 }), "v7", "v8")).toBe("thumbs: not enough data (v7 has no votes)");
    expect(verdict(thumbs({ sampleSizeA: 0n, sampleSizeB: 0n }), "v7", "v8")).toBe("thumbs: not enough data (v7 and v8 have no votes)");
    expect(verdict(thumbs({ metric: ComparedMetric.UNSPECIFIED }), "v7", "v8")).toBe("thumbs: nothing to compare (no thumbs or scores)");
  });

  it("formats numbers as people read them", () => {
    expect(signed(-0.00001)).toBe("0.0");
    expect(pValue(1)).toBe("= 1");
    expect(countdown(61_000)).toBe("1:01");
    expect(countdown(-5)).toBe("0:00");
    expect(countdown(3_600_000 + 5_000)).toBe("1:00:05");
    expect([-0.1, 0.1, 0.3, 0.5, 0.7, 0.9].map(agreementWords)).toEqual([
      "worse than chance",
      "slight",
      "fair",
      "moderate",
      "substantial",
      "almost perfect",
    ]);
  });
});

describe("controls", () => {
  const key = (changes: object) => create(FeedbackKeySchema, { name: "k", ...changes });

  it("derives a control from each kind of key schema", () => {
    expect(controlOf("k", key({ kind: FeedbackKeyKind.THUMBS })).shape).toBe("thumbs");
    const stars = controlOf("k", key({ kind: FeedbackKeyKind.SCORE, scoreMin: 1, scoreMax: 5, scoreStep: 1 }));
    expect(stars.shape).toBe("stars");
    expect(stars.choices.map((c) => c.label)).toEqual(["1", "2", "3", "4", "5"]);
    const tenths = controlOf("k", key({ kind: FeedbackKeyKind.SCORE, scoreMin: 0, scoreMax: 1, scoreStep: 0.1 }));
    expect(tenths.shape).toBe("choices");
    expect(tenths.choices.map((c) => c.label)).toEqual(["0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1"]);
    expect(controlOf("k", key({ kind: FeedbackKeyKind.SCORE, scoreMin: 0, scoreMax: 100, scoreStep: 1 })).shape).toBe("number");
    expect(controlOf("k", key({ kind: FeedbackKeyKind.SCORE, scoreMin: 0, scoreMax: 1 })).shape).toBe("number");
    expect(controlOf("k", key({ kind: FeedbackKeyKind.LABEL, labels: ["a", "b"] })).choices.map((c) => c.label)).toEqual(["a", "b"]);
    expect(controlOf("k", key({ kind: FeedbackKeyKind.TEXT })).shape).toBe("text");
    expect(controlOf("k", undefined)).toMatchObject({ shape: "text", optional: true });
  });

  it("picks with digits and steps with arrows within the choices", () => {
    const thumbs = controlOf("k", key({ kind: FeedbackKeyKind.THUMBS }));
    expect(answerOfDigit(thumbs, 2)).toEqual({ kind: "thumb", thumb: Thumb.DOWN });
    expect(answerOfDigit(thumbs, 3)).toBeUndefined();
    const labels = controlOf("k", key({ kind: FeedbackKeyKind.LABEL, labels: ["a", "b", "c"] }));
    expect(neighbour(labels, undefined, 1)).toEqual({ kind: "label", label: "a" });
    expect(neighbour(labels, undefined, -1)).toEqual({ kind: "label", label: "c" });
    expect(neighbour(labels, { kind: "label", label: "c" }, 1)).toEqual({ kind: "label", label: "c" });
  });

  it("checks number scores against min, max and step", () => {
    const score = controlOf("k", key({ kind: FeedbackKeyKind.SCORE, scoreMin: 0, scoreMax: 100, scoreStep: 0.5 }));
    expect(scoreProblem(score, 42.5)).toBeUndefined();
    expect(scoreProblem(score, 42.25)).toBe("in steps of 0.5 from 0");
    expect(scoreProblem(score, 101)).toBe("between 0 and 100");
    expect(scoreProblem(score, Number.NaN)).toBe("enter a number");
  });

  it("builds one feedback per answered key, the correction on the first", () => {
    const controls = [
      controlOf("verdict", key({ kind: FeedbackKeyKind.THUMBS })),
      controlOf("quality", key({ kind: FeedbackKeyKind.SCORE, scoreMin: 1, scoreMax: 5, scoreStep: 1 })),
      controlOf("note", undefined),
    ];
    const answers = new Map<string, Answer>([["quality", { kind: "score", score: 4 }]]);
    expect(missing(controls, answers)).toEqual(["verdict"]);
    answers.set("verdict", { kind: "thumb", thumb: Thumb.UP });
    answers.set("note", { kind: "text", text: "  " });
    expect(missing(controls, answers)).toEqual([]);
    const feedback = feedbackOf(controls, answers, "The window is 30 days.");
    expect(feedback.map((f) => [f.key, f.value.case, f.value.value, f.correction, f.comment])).toEqual([
      ["verdict", "thumb", Thumb.UP, "The window is 30 days.", ""],
      ["quality", "score", 4, "", ""],
    ]);
    expect(feedbackOf(controls, new Map(), "only a correction").map((f) => [f.key, f.correction])).toEqual([["verdict", "only a correction"]]);
    answers.set("note", { kind: "text", text: "looks fine" });
    expect(feedbackOf(controls, answers, "")[2]?.comment).toBe("looks fine");
  });
});

describe("session", () => {
  const payload = Buffer.from(JSON.stringify({ kid: "1", prj: "demo", rev: "alice", q: "q1", ro: false, exp: 1_900_000_000 })).toString("base64url");
  const token = `fbc1.${payload}.signature`;

  it("reads a console link's claims for display", () => {
    expect(sessionOfLink(token)).toEqual({
      kind: "link",
      token,
      project: "demo",
      reviewer: "alice",
      queueId: "q1",
      readOnly: false,
      expiresAt: 1_900_000_000_000,
    });
    expect(sessionOfLink("fbc1.not-json.x")).toMatchObject({ kind: "link", token: "fbc1.not-json.x", reviewer: "" });
    expect(sessionOfKey(" key ", " demo ", "ops")).toMatchObject({ kind: "key", token: "key", project: "demo", reviewer: "ops" });
  });

  it("takes the link out of the fragment into session storage", () => {
    const stored = new Map<string, string>();
    const storage = {
      getItem: (k: string) => stored.get(k) ?? null,
      setItem: (k: string, v: string) => void stored.set(k, v),
      removeItem: (k: string) => void stored.delete(k),
    } as Storage;
    const replaced: string[] = [];
    const history = { replaceState: (_: unknown, __: string, url: string) => void replaced.push(url) } as History;
    const location = { hash: `#link=${token}`, pathname: "/", search: "" } as Location;
    expect(startSession(location, history, storage)?.reviewer).toBe("alice");
    expect(replaced).toEqual(["/#/"]);
    expect(startSession({ hash: "#/queues", pathname: "/", search: "" } as Location, history, storage)?.token).toBe(token);
    expect(replaced).toHaveLength(1);
  });
});

describe("chart", () => {
  const HOUR = 3_600_000;
  const stats = (up: number, down: number) =>
    create(ThumbStatsSchema, { up: BigInt(up), down: BigInt(down), positiveRate: up / (up + down || 1), wilsonLower: 0.1, wilsonUpper: 0.9 });

  it("builds sorted series without empty buckets and breaks lines at gaps", () => {
    const series = buildSeries(
      new Map([
        ["v10", new Map([[2 * HOUR, stats(1, 1)]])],
        ["v9", new Map([[3 * HOUR, stats(3, 1)], [0, stats(1, 0)], [HOUR, stats(0, 0)]])],
      ]),
    );
    expect(series.map((s) => s.version)).toEqual(["v9", "v10"]);
    expect(series[0]?.points.map((p) => p.t)).toEqual([0, 3 * HOUR]);
    expect(runs(series[0]?.points ?? [], HOUR).map((run) => run.length)).toEqual([1, 1]);
  });

  it("puts ticks on round times and shows at least twelve buckets", () => {
    expect(timeTicks(0, 48 * HOUR, HOUR)).toEqual([0, 6, 12, 18, 24, 30, 36, 42].map((h) => h * HOUR));
    expect(timeTicks(0, 30 * 86_400_000, 86_400_000)).toEqual([0, 5, 10, 15, 20, 25].map((d) => d * 86_400_000));
    const series = buildSeries(new Map([["v1", new Map([[40 * HOUR, stats(1, 1)]])]]));
    expect(shownRange(series, 0, 48 * HOUR, HOUR)).toEqual([36 * HOUR, 48 * HOUR]);
    expect(shownRange([], 0, 48 * HOUR, HOUR)).toEqual([36 * HOUR, 48 * HOUR]);
  });
});
