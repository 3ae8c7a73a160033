// What a reviewer fills in for each key of a queue, derived from the key's schema (FeedbackKeyService):
// thumbs buttons, a score as choices (stars for 1-5 in steps of 1) or as a number honouring min, max and
// step, label buttons, or free text. Pure, so the keyboard rules are unit-tested (test/console).
import { create } from "@bufbuild/protobuf";
import { FeedbackSchema, Thumb, type Feedback } from "../../src/gen/feedback/v1/feedback_pb.js";
import { FeedbackKeyKind, type FeedbackKey } from "../../src/gen/feedback/v1/feedback_keys_pb.js";

/** One thing a reviewer can pick with a digit key or a click. */
export interface Choice {
  /** What the button says. */
  label: string;
  answer: Answer;
}

export type Answer =
  | { kind: "thumb"; thumb: Thumb }
  | { kind: "score"; score: number }
  | { kind: "label"; label: string }
  | { kind: "text"; text: string };

export interface Control {
  key: string;
  /** What reviewers should judge (the key's description). */
  description: string;
  /** How the control looks and reads keys: choices (digits 1-9, arrows), a number field, or text. */
  shape: "thumbs" | "stars" | "choices" | "labels" | "number" | "text";
  choices: Choice[];
  min: number;
  max: number;
  /** 0: any number. */
  step: number;
  /** Free text is optional; every other key needs an answer before submitting. */
  optional: boolean;
}

const MAX_CHOICES = 11; // a 0-10 scale still shows as buttons; more becomes a number field

/** Rounds away floating-point noise of min + k * step (0.1 * 3 = 0.30000000000000004). */
function tidy(value: number): number {
  return Number(value.toPrecision(12));
}

/** The control of a key; without a schema a key takes free text (sent as a comment). */
export function controlOf(key: string, schema: FeedbackKey | undefined): Control {
  const base = { key, description: schema?.description ?? "", choices: [], min: 0, max: 0, step: 0, optional: false };
  switch (schema?.kind) {
    case FeedbackKeyKind.THUMBS:
      return {
        ...base,
        shape: "thumbs",
        choices: [
          { label: "Good", answer: { kind: "thumb", thumb: Thumb.UP } },
          { label: "Bad", answer: { kind: "thumb", thumb: Thumb.DOWN } },
        ],
      };
    case FeedbackKeyKind.SCORE: {
      const { scoreMin: min, scoreMax: max, scoreStep: step } = schema;
      const steps = step > 0 ? Math.floor(tidy((max - min) / step)) + 1 : Infinity;
      if (steps > MAX_CHOICES) return { ...base, shape: "number", min, max, step };
      const choices = Array.from({ length: steps }, (_, k) => {
        const score = tidy(min + k * step);
        return { label: String(score), answer: { kind: "score" as const, score } };
      });
      const stars = min === 1 && max === 5 && step === 1;
      return { ...base, shape: stars ? "stars" : "choices", choices, min, max, step };
    }
    case FeedbackKeyKind.LABEL:
      return {
        ...base,
        shape: "labels",
        choices: schema.labels.map((label) => ({ label, answer: { kind: "label" as const, label } })),
      };
    default:
      return { ...base, shape: "text", optional: true };
  }
}

/** The answer that digit `digit` (1-9) picks on a control, if any. */
export function answerOfDigit(control: Control, digit: number): Answer | undefined {
  return control.choices[digit - 1]?.answer;
}

export function sameAnswer(a: Answer | undefined, b: Answer | undefined): boolean {
  return a !== undefined && b !== undefined && JSON.stringify(a) === JSON.stringify(b);
}

/** The choice next to the current answer (arrows): `delta` -1 or +1, clamped to the ends. */
export function neighbour(control: Control, current: Answer | undefined, delta: number): Answer | undefined {
  if (control.choices.length === 0) return current;
  const at = control.choices.findIndex((choice) => sameAnswer(choice.answer, current));
  const next = at < 0 ? (delta > 0 ? 0 : control.choices.length - 1) : Math.min(control.choices.length - 1, Math.max(0, at + delta));
  return control.choices[next]?.answer;
}

/** Why a number is not a valid score of the control, or undefined. */
export function scoreProblem(control: Control, score: number): string | undefined {
  if (!Number.isFinite(score)) return "enter a number";
  if (score < control.min || score > control.max) return `between ${control.min} and ${control.max}`;
  if (control.step > 0) {
    const k = (score - control.min) / control.step;
    if (Math.abs(k - Math.round(k)) > 1e-9) return `in steps of ${control.step} from ${control.min}`;
  }
  return undefined;
}

/** The keys still missing an answer, in the queue's order. */
export function missing(controls: readonly Control[], answers: ReadonlyMap<string, Answer>): string[] {
  return controls.filter((c) => !c.optional && answers.get(c.key) === undefined).map((c) => c.key);
}

/**
 * The feedback of one submission: one per answered key, in the queue's order; the correction (when the
 * reviewer changed the output) goes with the first of them.
 */
export function feedbackOf(controls: readonly Control[], answers: ReadonlyMap<string, Answer>, correction: string): Feedback[] {
  const out: Feedback[] = [];
  for (const control of controls) {
    const answer = answers.get(control.key);
    if (answer === undefined || (answer.kind === "text" && !answer.text.trim())) continue;
    const feedback = create(FeedbackSchema, { key: control.key });
    if (answer.kind === "thumb") feedback.value = { case: "thumb", value: answer.thumb };
    else if (answer.kind === "score") feedback.value = { case: "score", value: answer.score };
    else if (answer.kind === "label") feedback.value = { case: "label", value: answer.label };
    else feedback.comment = answer.text;
    out.push(feedback);
  }
  const first = out[0] ?? (correction && controls[0] ? create(FeedbackSchema, { key: controls[0].key }) : undefined);
  if (first && correction) {
    first.correction = correction;
    if (out.length === 0) out.push(first);
  }
  return out;
}
