// Numbers for people: percentages, p-values, verdicts of CompareVersions, agreement in words, countdowns.
// Pure functions (unit-tested in test/console/stats.test.ts).
import { ComparedMetric, type KeyComparison } from "../../src/gen/feedback/v1/aggregates_pb.js";

const MINUS = "\u2212";

/** 0.7712 -> "77.1%". */
export function percent(rate: number, digits = 1): string {
  return `${(rate * 100).toFixed(digits)}%`;
}

/** A signed number with a real minus sign: +16.6, −5.0. */
export function signed(value: number, digits = 1): string {
  const text = Math.abs(value).toFixed(digits);
  if (Number(text) === 0) return (0).toFixed(digits);
  return `${value < 0 ? MINUS : "+"}${text}`;
}

/** Two significant digits, as papers print p: 0.0117 -> "0.012"; tiny ones as "< 0.001". */
export function pValue(p: number): string {
  if (p < 0.001) return "< 0.001";
  return `= ${Number(p.toPrecision(2))}`;
}

/** 1234 -> "1,234". */
export function count(value: bigint | number): string {
  return Number(value).toLocaleString("en");
}

/** The significance level of the verdicts. */
export const ALPHA = 0.05;

/**
 * One sentence on a CompareVersions key: which version is better and by how much, with the p-value and
 * the votes (or scores) behind it, or why there is no verdict. `higherIsBetter` comes from the key's
 * schema (thumbs: up is better).
 */
export function verdict(comparison: KeyComparison, versionA: string, versionB: string, higherIsBetter = true): string {
  const { key, metric } = comparison;
  if (metric === ComparedMetric.UNSPECIFIED) return `${key}: nothing to compare (no thumbs or scores)`;
  const thumbs = metric === ComparedMetric.POSITIVE_RATE;
  const unit = thumbs ? "votes" : "scores";
  const a = Number(comparison.sampleSizeA);
  const b = Number(comparison.sampleSizeB);
  if (a === 0 || b === 0) {
    const missing = [a === 0 ? versionA : "", b === 0 ? versionB : ""].filter(Boolean).join(" and ");
    return `${key}: not enough data (${missing} ${a === 0 && b === 0 ? "have" : "has"} no ${unit})`;
  }
  const size = thumbs ? `${signed(comparison.difference * 100)} points` : `${signed(comparison.difference, 2)} in mean score`;
  const behind = `${size}, p ${pValue(comparison.pValue)}, ${count(a)} vs ${count(b)} ${unit}`;
  if (!(comparison.pValue < ALPHA) || comparison.difference === 0) {
    return `No clear difference on ${key}: ${behind}`;
  }
  const better = comparison.difference > 0 === higherIsBetter;
  return `${versionB} is ${better ? "better" : "worse"} than ${versionA} on ${key}: ${behind}`;
}

/** Landis and Koch's words for a kappa or alpha. */
export function agreementWords(value: number): string {
  if (value < 0) return "worse than chance";
  if (value <= 0.2) return "slight";
  if (value <= 0.4) return "fair";
  if (value <= 0.6) return "moderate";
  if (value <= 0.8) return "substantial";
  return "almost perfect";
}

/** Milliseconds left -> "9:05"; "0:00" once past. */
export function countdown(ms: number): string {
  const seconds = Math.max(0, Math.ceil(ms / 1000));
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = String(seconds % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}
