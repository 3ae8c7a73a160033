// Dashboard: a model's versions side by side, live (StreamAggregates with follow, Connect server
// streaming over fetch); positive rate per hour or day with its interval; two versions compared
// (CompareVersions) in words.
import { timestampDate, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  GroupByField,
  TimeBucket,
  type FeedbackStats,
  type GroupKey,
  type KeyComparison,
  type ThumbStats,
} from "../../src/gen/feedback/v1/aggregates_pb.js";
import type { StreamAggregatesRequestSchema } from "../../src/gen/feedback/v1/feedback_service_pb.js";
import { describeError, errorOf, type Api } from "./api.js";
import { buildSeries, RateChart } from "./chart.js";
import { href, navigate } from "./route.js";
import type { Session } from "./session.js";
import { count, percent, verdict } from "./stats.js";
import { ErrorNote, Loading, useLoad } from "./ui.js";

type StreamRequest = MessageInitShape<typeof StreamAggregatesRequestSchema>;

/** One group of a StreamAggregates message. */
interface GroupUpdate {
  key: GroupKey;
  stats: FeedbackStats;
}

const RETRY_MS = 2_000;
const FLUSH_MS = 50;
const HOUR = 3_600_000;
const DAY = 86_400_000;

interface Live {
  /** Snapshot received and the stream open. */
  state: "connecting" | "live" | "reconnecting" | "failed";
  /** Every write acknowledged before this time is included. */
  watermark: Date | undefined;
  error: string | undefined;
}

/**
 * Follows a StreamAggregates stream: `onGroups` with the group messages (snapshot and updates); reconnects
 * after a failure (the new snapshot replaces what was shown). Returns the stream's state.
 */
function useAggregates(
  api: Api,
  request: StreamRequest,
  deps: readonly unknown[],
  onGroups: (groups: GroupUpdate[], reset: boolean) => void,
): Live {
  const [live, setLive] = useState<Live>({ state: "connecting", watermark: undefined, error: undefined });
  const handler = useRef(onGroups);
  handler.current = onGroups;
  useEffect(() => {
    const controller = new AbortController();
    let pending: GroupUpdate[] = [];
    let reset = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const flush = (): void => {
      timer = undefined;
      handler.current(pending, reset);
      pending = [];
      reset = false;
    };
    const follow = async (): Promise<void> => {
      while (!controller.signal.aborted) {
        try {
          reset = true;
          pending = [];
          for await (const message of api.feedback.streamAggregates(request, { signal: controller.signal })) {
            const event = message.event;
            if (event.case === "group" && event.value.key && event.value.stats) {
              pending.push({ key: event.value.key, stats: event.value.stats });
              timer ??= setTimeout(flush, FLUSH_MS);
            } else if (event.case === "snapshotComplete" || event.case === "heartbeat") {
              if (event.case === "snapshotComplete") {
                clearTimeout(timer);
                flush();
              }
              const watermark = event.value.watermark ? timestampDate(event.value.watermark) : undefined;
              setLive({ state: "live", watermark, error: undefined });
            }
          }
        } catch (thrown) {
          if (controller.signal.aborted) return;
          const permanent = ["permission_denied", "unauthenticated", "invalid_argument", "unimplemented"].includes(errorOf(thrown).code);
          setLive((l) => ({ ...l, state: permanent ? "failed" : "reconnecting", error: describeError(thrown) }));
          if (permanent) return;
        }
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    };
    void follow();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, deps);
  return live;
}

/** Groups by "version\u0000key" (or by version and bucket), dropping groups whose feedback was all deleted. */
function apply(into: Map<string, FeedbackStats>, groups: readonly GroupUpdate[], name: (key: GroupKey) => string): void {
  for (const group of groups) {
    if (group.stats.count === 0n) into.delete(name(group.key));
    else into.set(name(group.key), group.stats);
  }
}

const byVersion = (a: string, b: string): number => a.localeCompare(b, "en", { numeric: true });

export function Dashboard({ api, session, model }: { api: Api; session: Session; model: string }) {
  if (!model) return <ModelPicker api={api} session={session} />;
  return <ModelDashboard api={api} session={session} model={model} />;
}

function ModelPicker({ api, session }: { api: Api; session: Session }) {
  const models = useLoad(
    async (signal) => {
      const found = new Map<string, bigint>();
      const request = { filter: { project: session.project }, groupBy: [GroupByField.MODEL], follow: false };
      for await (const message of api.feedback.streamAggregates(request, { signal })) {
        if (message.event.case === "group" && message.event.value.key && message.event.value.stats) {
          found.set(message.event.value.key.model, message.event.value.stats.count);
        }
      }
      return [...found].sort(([a], [b]) => a.localeCompare(b));
    },
    [api],
  );
  const first = useRef<HTMLAnchorElement>(null);
  useEffect(() => first.current?.focus(), [models.value]);
  return (
    <section aria-labelledby="models-title">
      <h1 id="models-title">Dashboard</h1>
      <p class="muted">Pick a model to see its versions side by side, live.</p>
      {models.error ? <ErrorNote>{models.error}</ErrorNote> : null}
      {!models.value && !models.error ? <Loading what="models" /> : null}
      {models.value?.length === 0 ? <p class="note muted">No feedback in this project yet.</p> : null}
      <ul class="models">
        {models.value?.map(([name, total], index) => (
          <li key={name}>
            <a class="card model" href={href({ page: "dashboard", model: name })} ref={index === 0 ? first : null}>
              <strong>{name || "(no model)"}</strong>
              <span class="muted">{count(total)} feedback</span>
            </a>
          </li>
        ))}
      </ul>
    </section>
  );
}

function ModelDashboard({ api, session, model }: { api: Api; session: Session; model: string }) {
  // Totals per version and key.
  const totals = useRef(new Map<string, FeedbackStats>());
  const [revision, setRevision] = useState(0);
  const live = useAggregates(
    api,
    { filter: { project: session.project, models: [model] }, groupBy: [GroupByField.MODEL_VERSION, GroupByField.KEY], follow: true },
    [api, model],
    (groups, reset) => {
      if (reset) totals.current = new Map();
      apply(totals.current, groups, (k) => `${k.modelVersion}\u0000${k.key}`);
      setRevision((r) => r + 1);
    },
  );
  const { versions, keys } = useMemo(() => {
    const v = new Set<string>();
    const k = new Set<string>();
    for (const name of totals.current.keys()) {
      const [version = "", key = ""] = name.split("\u0000");
      v.add(version);
      k.add(key);
    }
    return { versions: [...v].sort(byVersion), keys: [...k].sort() };
  }, [revision]);
  const colour = (version: string): number => Math.max(0, versions.indexOf(version));
  const thumbKeys = keys.filter((key) => versions.some((v) => Number(totals.current.get(`${v}\u0000${key}`)?.thumbs?.up ?? 0n) + Number(totals.current.get(`${v}\u0000${key}`)?.thumbs?.down ?? 0n) > 0));

  const schemas = useLoad(async (signal) => (await api.keys.listFeedbackKeys({ project: session.project }, { signal })).feedbackKeys, [api]);
  const higherIsBetter = (key: string): boolean => schemas.value?.find((k) => k.name === key)?.higherIsBetter ?? true;

  return (
    <section aria-labelledby="dashboard-title" class="dashboard">
      <header class="page-head">
        <h1 id="dashboard-title">
          {model} <span class="muted">versions</span>
        </h1>
        <div class="head-side">
          <LiveBadge live={live} />
          <select aria-label="Model" onChange={(e) => navigate({ page: "dashboard", model: e.currentTarget.value })} value={model}>
            <option value={model}>{model}</option>
            <option value="">Other model…</option>
          </select>
        </div>
      </header>
      {live.error && live.state !== "live" ? (
        <ErrorNote>
          {live.error}
          {live.state === "reconnecting" ? " (reconnecting)" : ""}
        </ErrorNote>
      ) : null}
      {live.state === "connecting" ? <Loading what="aggregates" /> : null}
      {live.state === "live" && versions.length === 0 ? <p class="note muted">No feedback for {model} yet.</p> : null}
      {versions.length > 0 ? <VersionsTable versions={versions} keys={keys} totals={totals.current} colour={colour} /> : null}
      {thumbKeys.length > 0 ? <RateOverTime api={api} session={session} model={model} thumbKeys={thumbKeys} colour={colour} /> : null}
      {versions.length > 0 ? <Compare api={api} session={session} model={model} versions={versions} revision={revision} higherIsBetter={higherIsBetter} /> : null}
    </section>
  );
}

function LiveBadge({ live }: { live: Live }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  const age = live.watermark ? Math.max(0, Math.round((now - live.watermark.getTime()) / 1000)) : undefined;
  return (
    <span class={`live ${live.state}`} role="status" data-testid="live">
      <svg viewBox="0 0 10 10" aria-hidden="true">
        <circle cx="5" cy="5" r="4" />
      </svg>
      {live.state === "live" ? `live${age !== undefined ? ` · as of ${age} s ago` : ""}` : live.state}
    </span>
  );
}

function topLabels(stats: FeedbackStats, n = 3): [string, bigint][] {
  return Object.entries(stats.labelCounts)
    .sort(([, a], [, b]) => (a === b ? 0 : a > b ? -1 : 1))
    .slice(0, n);
}

function VersionsTable({
  versions,
  keys,
  totals,
  colour,
}: {
  versions: string[];
  keys: string[];
  totals: Map<string, FeedbackStats>;
  colour: (version: string) => number;
}) {
  return (
    <div class="table-scroll card">
      <table class="versions">
        <thead>
          <tr>
            <th scope="col">Key</th>
            {versions.map((v) => (
              <th scope="col" key={v} class={`version series-${colour(v) % 6}`}>
                <svg viewBox="0 0 12 12" aria-hidden="true">
                  <rect class="swatch" x="0" y="0" width="12" height="12" rx="2" />
                </svg>
                {v || "(none)"}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {keys.map((key) => (
            <tr key={key}>
              <th scope="row">{key}</th>
              {versions.map((version) => {
                const stats = totals.get(`${version}\u0000${key}`);
                return (
                  <td key={version} data-version={version} data-key={key}>
                    {stats ? <StatsCell stats={stats} /> : <span class="muted">—</span>}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function StatsCell({ stats }: { stats: FeedbackStats }) {
  const thumbs = stats.thumbs;
  const votes = thumbs ? Number(thumbs.up + thumbs.down) : 0;
  const scores = stats.scores;
  return (
    <div class="stats">
      <div>
        <span class="big" data-testid="count">
          {count(stats.count)}
        </span>{" "}
        <span class="muted small">feedback</span>
      </div>
      {thumbs && votes > 0 ? (
        <div data-testid="positive">
          <strong>{percent(thumbs.positiveRate)}</strong> positive{" "}
          <span class="muted small">
            [{percent(thumbs.wilsonLower, 0)}–{percent(thumbs.wilsonUpper, 0)}] · {count(thumbs.up)} up / {count(thumbs.down)} down
          </span>
        </div>
      ) : null}
      {scores && scores.count > 0n ? (
        <div data-testid="mean">
          mean <strong>{scores.mean.toFixed(2)}</strong>{" "}
          <span class="muted small">
            ± {scores.stddev.toFixed(2)} · {count(scores.count)} scores
          </span>
        </div>
      ) : null}
      {Object.keys(stats.labelCounts).length ? (
        <div class="labels small">
          {topLabels(stats).map(([label, n]) => (
            <span class="chip" key={label}>
              {label} <span class="muted">{count(n)}</span>
            </span>
          ))}
        </div>
      ) : null}
    </div>
  );
}

function RateOverTime({
  api,
  session,
  model,
  thumbKeys,
  colour,
}: {
  api: Api;
  session: Session;
  model: string;
  thumbKeys: string[];
  colour: (version: string) => number;
}) {
  const [key, setKey] = useState(thumbKeys.includes("thumbs") ? "thumbs" : (thumbKeys[0] as string));
  const [bucket, setBucket] = useState<"hour" | "day">("hour");
  const stepMs = bucket === "hour" ? HOUR : DAY;
  // The last 48 hours or 30 days, from a whole bucket (aggregate ranges are whole minutes).
  const start = useMemo(() => Math.floor(Date.now() / stepMs) * stepMs - (bucket === "hour" ? 47 : 29) * stepMs, [bucket]);
  const buckets = useRef(new Map<string, FeedbackStats>());
  const [revision, setRevision] = useState(0);
  useAggregates(
    api,
    {
      filter: { project: session.project, models: [model], keys: [key], startTime: timestampFromMs(start) },
      groupBy: [GroupByField.MODEL_VERSION],
      timeBucket: bucket === "hour" ? TimeBucket.HOUR : TimeBucket.DAY,
      follow: true,
    },
    [api, model, key, bucket, start],
    (groups, reset) => {
      if (reset) buckets.current = new Map();
      apply(buckets.current, groups, (k) => `${k.modelVersion}\u0000${k.bucketStart ? timestampMs(k.bucketStart) : 0}`);
      setRevision((r) => r + 1);
    },
  );
  const series = useMemo(() => {
    const byVersion = new Map<string, Map<number, ThumbStats>>();
    for (const [name, stats] of buckets.current) {
      const [version = "", t = "0"] = name.split("\u0000");
      if (!stats.thumbs) continue;
      if (!byVersion.has(version)) byVersion.set(version, new Map());
      byVersion.get(version)?.set(Number(t), stats.thumbs);
    }
    return buildSeries(byVersion);
  }, [revision]);
  return (
    <section class="card" aria-labelledby="rate-title">
      <header class="section-head">
        <h2 id="rate-title">Positive rate per {bucket}</h2>
        <div class="head-side">
          {thumbKeys.length > 1 ? (
            <select aria-label="Key" value={key} onChange={(e) => setKey(e.currentTarget.value)}>
              {thumbKeys.map((k) => (
                <option key={k} value={k}>
                  {k}
                </option>
              ))}
            </select>
          ) : (
            <span class="muted small">{key}</span>
          )}
          <div class="segmented" role="group" aria-label="Bucket">
            {(["hour", "day"] as const).map((b) => (
              <button type="button" key={b} aria-pressed={bucket === b} onClick={() => setBucket(b)}>
                per {b}
              </button>
            ))}
          </div>
        </div>
      </header>
      <RateChart series={series} start={start} end={Math.floor(Date.now() / stepMs) * stepMs + stepMs} stepMs={stepMs} colour={colour} />
    </section>
  );
}

function Compare({
  api,
  session,
  model,
  versions,
  revision,
  higherIsBetter,
}: {
  api: Api;
  session: Session;
  model: string;
  versions: string[];
  revision: number;
  higherIsBetter: (key: string) => boolean;
}) {
  const [a, setA] = useState(versions.length > 1 ? (versions[versions.length - 2] as string) : (versions[0] as string));
  const [b, setB] = useState(versions[versions.length - 1] as string);
  const [result, setResult] = useState<{ comparisons: KeyComparison[]; a: string; b: string } | string | undefined>(undefined);
  // Compare again when the aggregates change, at most once a second.
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const timer = setTimeout(() => setTick((t) => t + 1), 1000);
    return () => clearTimeout(timer);
  }, [revision]);
  useEffect(() => {
    if (!a || !b || a === b) {
      setResult(a === b ? "Pick two different versions." : undefined);
      return;
    }
    const controller = new AbortController();
    api.feedback.compareVersions({ project: session.project, model, versionA: a, versionB: b }, { signal: controller.signal }).then(
      (response) => setResult({ comparisons: response.comparisons, a, b }),
      (thrown: unknown) => controller.signal.aborted || setResult(describeError(thrown)),
    );
    return () => controller.abort();
  }, [api, model, a, b, tick]);
  const picker = (value: string, set: (v: string) => void, label: string) => (
    <select aria-label={label} value={value} onChange={(e) => set(e.currentTarget.value)}>
      {versions.map((v) => (
        <option key={v} value={v}>
          {v}
        </option>
      ))}
    </select>
  );
  return (
    <section class="card compare" aria-labelledby="compare-title">
      <header class="section-head">
        <h2 id="compare-title">Compare versions</h2>
        <div class="head-side">
          {picker(a, setA, "Baseline version")}
          <span class="muted">→</span>
          {picker(b, setB, "Candidate version")}
        </div>
      </header>
      {typeof result === "string" ? <p class="note muted">{result}</p> : null}
      {typeof result === "object" ? (
        <ul class="verdicts" data-testid="verdicts">
          {result.comparisons.map((c) => {
            const text = verdict(c, result.a, result.b, higherIsBetter(c.key));
            const tone = text.includes(" is better ") ? "better" : text.includes(" is worse ") ? "worse" : "neutral";
            return (
              <li key={c.key} class={tone} data-key={c.key}>
                {text}
                <span class="muted small"> ({c.test || "no test"})</span>
              </li>
            );
          })}
          {result.comparisons.length === 0 ? <li class="muted">No keys to compare.</li> : null}
        </ul>
      ) : null}
      <p class="muted small">
        Two-proportion z-test for thumbs, Welch's t-test for scores; "better" or "worse" when p &lt; 0.05.
      </p>
    </section>
  );
}
