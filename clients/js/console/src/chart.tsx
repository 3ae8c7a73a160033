// Positive rate per hour or day for each version, with its 95% Wilson interval as a band: plain SVG,
// styled by console.css (series-N classes), no chart library.
import type { ThumbStats } from "../../src/gen/feedback/v1/aggregates_pb.js";
import { count, percent } from "./stats.js";

export interface Point {
  /** Start of the bucket, ms since the epoch. */
  t: number;
  rate: number;
  lower: number;
  upper: number;
  votes: number;
}

export interface Series {
  version: string;
  points: Point[];
}

/** The series of each version from its buckets' thumbs, buckets without votes left out. */
export function buildSeries(buckets: ReadonlyMap<string, ReadonlyMap<number, ThumbStats>>): Series[] {
  return [...buckets]
    .sort(([a], [b]) => a.localeCompare(b, "en", { numeric: true }))
    .map(([version, byTime]) => ({
      version,
      points: [...byTime]
        .map(([t, s]) => ({ t, rate: s.positiveRate, lower: s.wilsonLower, upper: s.wilsonUpper, votes: Number(s.up + s.down) }))
        .filter((p) => p.votes > 0)
        .sort((a, b) => a.t - b.t),
    }))
    .filter((s) => s.points.length > 0);
}

/** Runs of consecutive buckets (a bucket without votes breaks the line and the band). */
export function runs(points: readonly Point[], stepMs: number): Point[][] {
  const out: Point[][] = [];
  for (const point of points) {
    const run = out[out.length - 1];
    const last = run?.[run.length - 1];
    if (run && last && point.t - last.t <= stepMs) run.push(point);
    else out.push([point]);
  }
  return out;
}

const WIDTH = 960;
const HEIGHT = 260;
const PAD = { left: 48, right: 16, top: 12, bottom: 28 };
const DAY_MS = 86_400_000;
const MIN_BUCKETS = 12;

function timeLabel(t: number, stepMs: number): string {
  const date = new Date(t);
  if (stepMs >= DAY_MS || t % DAY_MS === 0) return date.toLocaleDateString("en", { month: "short", day: "numeric", timeZone: "UTC" });
  return date.toLocaleTimeString("en", { hour: "2-digit", minute: "2-digit", hour12: false, timeZone: "UTC" });
}

/** Tick times at a round interval (hours: 1, 2, 3, 6, 12, 24; days: 1, 2, 5, 7, 14), at most 8. */
export function timeTicks(start: number, end: number, stepMs: number): number[] {
  const multiples = stepMs >= DAY_MS ? [1, 2, 5, 7, 14, 28] : [1, 2, 3, 6, 12, 24, 48];
  const every = (multiples.find((m) => (end - start) / (m * stepMs) <= 8) ?? multiples[multiples.length - 1]!) * stepMs;
  const ticks: number[] = [];
  for (let t = Math.ceil(start / every) * every; t < end; t += every) ticks.push(t);
  return ticks;
}

/** The time range shown: from the first bucket with votes (at least MIN_BUCKETS wide), within [start, end). */
export function shownRange(series: readonly Series[], start: number, end: number, stepMs: number): [number, number] {
  const first = Math.min(...series.flatMap((s) => s.points.map((p) => p.t)));
  const from = Number.isFinite(first) ? Math.max(start, Math.min(first - stepMs, end - MIN_BUCKETS * stepMs)) : end - MIN_BUCKETS * stepMs;
  return [Math.max(start, from), end];
}

export function RateChart({
  series,
  start,
  end,
  stepMs,
  colour,
}: {
  series: Series[];
  start: number;
  end: number;
  stepMs: number;
  /** The colour (series-N class) of a version, the same as in the table. */
  colour: (version: string) => number;
}) {
  [start, end] = shownRange(series, start, end, stepMs);
  const span = Math.max(stepMs, end - start);
  const x = (t: number): number => PAD.left + ((t - start) / span) * (WIDTH - PAD.left - PAD.right);
  const y = (rate: number): number => PAD.top + (1 - rate) * (HEIGHT - PAD.top - PAD.bottom);
  const xTicks = timeTicks(start, end, stepMs);
  // A bucket's point sits in its middle.
  const mid = (t: number): number => x(t + stepMs / 2);
  const unit = stepMs >= 86_400_000 ? "day" : "hour";
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={`Positive rate per ${unit} and version, with 95% intervals`}>
        {[0, 0.25, 0.5, 0.75, 1].map((r) => (
          <g key={r} class="grid">
            <line x1={PAD.left} x2={WIDTH - PAD.right} y1={y(r)} y2={y(r)} />
            <text x={PAD.left - 6} y={y(r) + 4} text-anchor="end">
              {percent(r, 0)}
            </text>
          </g>
        ))}
        {xTicks.map((t) => (
          <g key={t} class="grid">
            <line class="tick" x1={x(t)} x2={x(t)} y1={HEIGHT - PAD.bottom} y2={HEIGHT - PAD.bottom + 4} />
            <text class="axis" x={x(t)} y={HEIGHT - 8} text-anchor="middle">
              {timeLabel(t, stepMs)}
            </text>
          </g>
        ))}
        {series.map((s) => (
          <g key={s.version} class={`series series-${colour(s.version) % 6}`} data-version={s.version}>
            {runs(s.points, stepMs).map((run, k) => {
              const band = [...run.map((p) => `${mid(p.t)},${y(p.upper)}`), ...[...run].reverse().map((p) => `${mid(p.t)},${y(p.lower)}`)];
              return (
                <g key={k}>
                  {run.length > 1 ? <polygon class="band" points={band.join(" ")} /> : <line class="band-line" x1={mid(run[0]!.t)} x2={mid(run[0]!.t)} y1={y(run[0]!.upper)} y2={y(run[0]!.lower)} />}
                  {run.length > 1 ? <polyline class="line" points={run.map((p) => `${mid(p.t)},${y(p.rate)}`).join(" ")} /> : null}
                </g>
              );
            })}
            {s.points.map((p) => (
              <circle key={p.t} class="dot" cx={mid(p.t)} cy={y(p.rate)} r="3">
                <title>
                  {`${s.version} · ${timeLabel(p.t, stepMs)} UTC · ${percent(p.rate)} [${percent(p.lower, 0)}–${percent(p.upper, 0)}] · ${count(p.votes)} votes`}
                </title>
              </circle>
            ))}
          </g>
        ))}
      </svg>
      <figcaption>
        {series.length === 0 ? <span class="muted">No thumbs in this period.</span> : null}
        {series.map((s) => (
          <span key={s.version} class={`legend series-${colour(s.version) % 6}`}>
            <svg viewBox="0 0 12 12" aria-hidden="true">
              <rect class="swatch" x="0" y="0" width="12" height="12" rx="2" />
            </svg>
            {s.version}
          </span>
        ))}
        <span class="muted small">Bands: 95% Wilson interval. Times in UTC.</span>
      </figcaption>
    </figure>
  );
}
