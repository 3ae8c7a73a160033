// Review: claim the next item of a queue, read it, answer each key, submit; keyboard first.
//
//   1-9 pick a choice of the current key (then move to the next key)   ←/→ change it
//   Tab, ↑/↓ move between keys      Enter submit      s skip      ? the keys      Esc leave a text field
//   Ctrl+Enter submits from a text field; n (or Enter) claims the next item after a lease expired.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { ClaimNextItemResponse, GetItemContextResponse } from "../../src/gen/feedback/v1/annotation_pb.js";
import { ContentFormat } from "../../src/gen/feedback/v1/annotation_pb.js";
import { Thumb, type Feedback } from "../../src/gen/feedback/v1/feedback_pb.js";
import type { FeedbackKey } from "../../src/gen/feedback/v1/feedback_keys_pb.js";
import { describeError, errorOf, type Api } from "./api.js";
import { Content, Formatted } from "./content.js";
import {
  answerOfDigit,
  controlOf,
  feedbackOf,
  missing,
  neighbour,
  sameAnswer,
  scoreProblem,
  type Answer,
  type Control,
} from "./controls.js";
import { safeHref } from "./markdown.js";
import { href } from "./route.js";
import type { Session } from "./session.js";
import { countdown } from "./stats.js";
import { ErrorNote, Loading } from "./ui.js";

type Phase = "claiming" | "item" | "submitting" | "empty" | "expired" | "error";

interface Claimed {
  response: ClaimNextItemResponse;
  /** When the lease ends on this page's clock (ms since the epoch). */
  leaseEnd: number;
}

const DEFAULT_LEASE_MS = 10 * 60_000;

export function Review({ api, session, queueId }: { api: Api; session: Session; queueId: string }) {
  const [phase, setPhase] = useState<Phase>("claiming");
  const [claimed, setClaimed] = useState<Claimed | undefined>(undefined);
  const [context, setContext] = useState<GetItemContextResponse | string | undefined>(undefined);
  const [schemas, setSchemas] = useState<Map<string, FeedbackKey> | undefined>(undefined);
  const [answers, setAnswers] = useState<Map<string, Answer>>(new Map());
  const [correction, setCorrection] = useState("");
  const [active, setActive] = useState(0);
  const [status, setStatus] = useState<{ text: string; tone: "ok" | "error" | "info" } | undefined>(undefined);
  const [help, setHelp] = useState(false);
  const [now, setNow] = useState(Date.now());
  const [done, setDone] = useState(0);
  const [queueName, setQueueName] = useState("");
  const rows = useRef<(HTMLElement | null)[]>([]);
  const root = useRef<HTMLDivElement>(null);

  const output = claimed?.response.item?.content?.output ?? "";
  const keys = claimed?.response.queue?.keys ?? [];
  const controls = useMemo(() => keys.map((key) => controlOf(key, schemas?.get(key))), [keys.join("\n"), schemas]);

  const claim = useCallback(async () => {
    setPhase("claiming");
    setContext(undefined);
    try {
      const started = Date.now();
      const response = await api.annotation.claimNextItem({ project: session.project, queueId, reviewer: session.reviewer });
      // The page's clock may differ from the server's: count the queue's lease from when the claim was sent.
      const lease = response.queue?.lease;
      const leaseEnd = lease
        ? started + Number(lease.seconds) * 1000 + lease.nanos / 1e6
        : response.leaseExpireTime
          ? timestampMs(response.leaseExpireTime)
          : started + DEFAULT_LEASE_MS;
      setClaimed({ response, leaseEnd });
      setQueueName(response.queue?.name ?? "");
      setAnswers(new Map());
      setCorrection(response.item?.content?.output ?? "");
      setActive(0);
      setPhase("item");
      api.annotation
        .getItemContext({ project: session.project, queueId, claimId: response.claimId })
        .then(setContext, (thrown: unknown) => setContext(describeError(thrown)));
    } catch (thrown) {
      const error = errorOf(thrown);
      setClaimed(undefined);
      if (error.code === "not_found" && error.reason === "QUEUE_EMPTY") {
        setPhase("empty");
      } else {
        setStatus({ text: describeError(thrown), tone: "error" });
        setPhase("error");
      }
    }
  }, [api, session, queueId]);

  useEffect(() => {
    void claim();
    api.keys.listFeedbackKeys({ project: session.project }).then(
      ({ feedbackKeys }) => setSchemas(new Map(feedbackKeys.map((k) => [k.name, k]))),
      () => setSchemas(new Map()), // keys without a schema take free text
    );
  }, [claim]);

  // The lease clock.
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(timer);
  }, []);
  const left = claimed ? claimed.leaseEnd - now : 0;
  useEffect(() => {
    if (phase === "item" && claimed && left <= 0) setPhase("expired");
  }, [phase, claimed, left <= 0]);

  // A new item: the first key has the focus.
  useEffect(() => {
    if (phase === "item" && schemas) rows.current[0]?.focus();
  }, [claimed, schemas === undefined]);
  useEffect(() => {
    if (phase === "expired" || phase === "empty") root.current?.querySelector<HTMLElement>("[data-next]")?.focus();
  }, [phase]);

  const answer = (key: string, value: Answer | undefined): void => {
    setAnswers((previous) => {
      const next = new Map(previous);
      if (value === undefined) next.delete(key);
      else next.set(key, value);
      return next;
    });
  };

  const focusRow = (index: number): void => {
    const target = Math.max(0, Math.min(controls.length - 1, index));
    setActive(target);
    rows.current[target]?.focus();
  };

  const submit = async (): Promise<void> => {
    if (phase !== "item" || !claimed) return;
    const absent = missing(controls, answers);
    if (absent.length) {
      setStatus({ text: `Answer ${absent.join(", ")} first.`, tone: "error" });
      focusRow(controls.findIndex((c) => c.key === absent[0]));
      return;
    }
    const numberProblem = controls
      .map((c) => {
        const a = answers.get(c.key);
        return c.shape === "number" && a?.kind === "score" ? scoreProblem(c, a.score) && `${c.key}: ${scoreProblem(c, a.score)}` : undefined;
      })
      .find(Boolean);
    if (numberProblem) {
      setStatus({ text: numberProblem, tone: "error" });
      return;
    }
    const feedback = feedbackOf(controls, answers, correction !== output ? correction : "");
    if (feedback.length === 0) {
      setStatus({ text: "Nothing to submit: answer a key or edit the correction.", tone: "error" });
      return;
    }
    setPhase("submitting");
    try {
      await api.annotation.submitAnnotation({ project: session.project, queueId, claimId: claimed.response.claimId, feedback });
      setDone((n) => n + 1);
      const trace = claimed.response.item?.traceId ?? "";
      setStatus({ text: trace ? `Saved (trace ${trace.slice(0, 8)}…).` : "Saved.", tone: "ok" });
      await claim();
    } catch (thrown) {
      const error = errorOf(thrown);
      if (error.reason === "LEASE_EXPIRED") {
        setPhase("expired");
      } else {
        setStatus({ text: describeError(thrown), tone: "error" });
        setPhase("item");
      }
    }
  };

  const skip = async (): Promise<void> => {
    if (phase !== "item" || !claimed) return;
    setPhase("submitting");
    try {
      await api.annotation.skipItem({ project: session.project, queueId, claimId: claimed.response.claimId });
      setStatus({ text: "Skipped.", tone: "info" });
    } catch (thrown) {
      if (errorOf(thrown).reason !== "LEASE_EXPIRED") setStatus({ text: describeError(thrown), tone: "error" });
    }
    await claim();
  };

  // The keyboard, while this page is open (the latest state through a ref).
  const handler = useRef<(event: KeyboardEvent) => void>(() => undefined);
  handler.current = (event: KeyboardEvent): void => {
    if (event.defaultPrevented || event.altKey) return;
    const target = event.target instanceof HTMLElement ? event.target : undefined;
    if (target && root.current && !root.current.contains(target) && target !== document.body) return; // header, nav
    const typing = target?.matches("textarea, input, select") ?? false;
    if (typing) {
      if (event.key === "Escape") {
        event.preventDefault();
        target?.blur();
        const row = target?.closest<HTMLElement>("[data-row]");
        if (row && row.tabIndex >= 0) row.focus();
        else root.current?.querySelector<HTMLElement>("[data-submit]")?.focus();
      } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey || target?.tagName === "INPUT")) {
        event.preventDefault();
        void submit();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey) return;
    if (target?.matches("[data-native]") && (event.key === "Enter" || event.key === " ")) return; // its own click
    if (help && event.key === "Escape") {
      setHelp(false);
      return;
    }
    switch (event.key) {
      case "?":
        setHelp((open) => !open);
        break;
      case "Enter":
        if (phase === "expired" || phase === "empty") void claim();
        else void submit();
        break;
      case "n":
        if (phase === "expired" || phase === "empty") void claim();
        else return;
        break;
      case "s":
        void skip();
        break;
      case "ArrowDown":
        focusRow(active + 1);
        break;
      case "ArrowUp":
        focusRow(active - 1);
        break;
      case "ArrowRight":
      case "ArrowLeft": {
        const control = controls[active];
        if (!control || control.choices.length === 0) return;
        answer(control.key, neighbour(control, answers.get(control.key), event.key === "ArrowRight" ? 1 : -1));
        break;
      }
      default: {
        if (!/^[1-9]$/.test(event.key) || phase !== "item") return;
        const control = controls[active];
        const picked = control && answerOfDigit(control, Number(event.key));
        if (!control || !picked) return;
        answer(control.key, picked);
        // On to the next key with choices; after the last one, the submit button (Enter submits).
        const next = controls.findIndex((c, index) => index > active && c.choices.length > 0);
        if (next >= 0) focusRow(next);
        else root.current?.querySelector<HTMLElement>("[data-submit]")?.focus();
      }
    }
    event.preventDefault();
  };
  useEffect(() => {
    const listener = (event: KeyboardEvent): void => handler.current(event);
    document.addEventListener("keydown", listener);
    return () => document.removeEventListener("keydown", listener);
  }, []);

  const item = claimed?.response.item;
  const queue = claimed?.response.queue;
  const traceUrl = item?.traceUrl ? safeHref(item.traceUrl) : undefined;
  return (
    <div class="review" ref={root} data-phase={phase}>
      <header class="page-head">
        <h1>
          Review <span class="muted">{queue?.name ?? queueName}</span>
        </h1>
        <div class="head-side">
          <span class="muted small" data-testid="done-count">
            {done} annotated in this session
          </span>
          <button type="button" class="quiet" data-native onClick={() => setHelp((open) => !open)} aria-expanded={help}>
            Keys <kbd>?</kbd>
          </button>
        </div>
      </header>
      {help ? <KeyHelp onClose={() => setHelp(false)} /> : null}
      {status && phase !== "error" ? (
        <p class={`note ${status.tone}`} role="status" data-testid="status">
          {status.text}
        </p>
      ) : null}
      {phase === "claiming" && !claimed ? <Loading what="the next item" /> : null}
      {phase === "error" ? (
        <div class="card">
          <ErrorNote>{status?.text ?? "Something went wrong."}</ErrorNote>
          <button type="button" data-native data-next onClick={() => void claim()}>
            Try again
          </button>{" "}
          <a class="button" href={href({ page: "queues" })}>
            Back to the queues
          </a>
        </div>
      ) : null}
      {phase === "empty" ? (
        <div class="card empty" data-testid="empty">
          <h2>Nothing left for you in this queue</h2>
          <p class="muted">Every item is done, held by other reviewers, or already yours. New items show up when they are added.</p>
          <button type="button" data-native data-next onClick={() => void claim()}>
            Check again
          </button>{" "}
          <a class="button" href={href({ page: "queues" })}>
            Back to the queues
          </a>
        </div>
      ) : null}
      {phase === "expired" ? (
        <div class="card expired" role="alert" data-testid="expired">
          <h2>Your lease on this item expired</h2>
          <p>It went back to the pool, so someone else may review it; nothing was saved. Take the next item instead.</p>
          <button type="button" class="primary" data-native data-next onClick={() => void claim()}>
            Next item <kbd>Enter</kbd>
          </button>
        </div>
      ) : null}
      {claimed && item && (phase === "item" || phase === "submitting" || phase === "claiming") ? (
        <div class="review-grid" aria-busy={phase !== "item"}>
          <div class="review-main">
            <div class="item-meta">
              <span>
                trace <code data-testid="trace">{item.traceId}</code>
              </span>
              {item.model ? (
                <span>
                  {item.model} <span class="muted">{item.modelVersion}</span>
                </span>
              ) : null}
              {traceUrl ? (
                <a href={traceUrl} target="_blank" rel="noopener noreferrer">
                  Open trace ↗
                </a>
              ) : null}
              <span class={`lease ${left < 60_000 ? "soon" : ""}`} data-testid="lease" role="timer" aria-live="off">
                lease {countdown(left)} left
              </span>
            </div>
            {queue?.instructions ? (
              <details class="instructions card" open>
                <summary>Instructions</summary>
                <Formatted text={queue.instructions} format={ContentFormat.MARKDOWN} />
              </details>
            ) : null}
            {item.content ? (
              <Content content={item.content} />
            ) : (
              <p class="note muted">This item has no content: follow the trace link to see the call.</p>
            )}
            <UserFeedback context={context} />
          </div>
          <form
            class="review-form card"
            aria-label="Your annotation"
            onSubmit={(event) => {
              event.preventDefault();
              void submit();
            }}
          >
            {!schemas ? <Loading what="the keys" /> : null}
            {schemas
              ? controls.map((control, index) => (
                  <KeyRow
                    key={control.key}
                    control={control}
                    value={answers.get(control.key)}
                    active={index === active}
                    index={index}
                    rowRef={(element) => {
                      rows.current[index] = element;
                    }}
                    onFocus={() => setActive(index)}
                    onAnswer={(value) => answer(control.key, value)}
                  />
                ))
              : null}
            <label class="correction">
              <span class="label">
                Correction <span class="muted small">{output ? "(edit the output; sent when changed)" : "(optional)"}</span>
              </span>
              <textarea
                rows={Math.min(12, Math.max(3, correction.split("\n").length + 1))}
                value={correction}
                onInput={(e) => setCorrection(e.currentTarget.value)}
                onFocus={() => setActive(controls.length)}
                data-testid="correction"
              />
            </label>
            <div class="actions">
              <button type="submit" class="primary" data-native data-submit disabled={phase !== "item"}>
                Submit <kbd>Enter</kbd>
              </button>
              <button type="button" data-native onClick={() => void skip()} disabled={phase !== "item"}>
                Skip <kbd>s</kbd>
              </button>
            </div>
          </form>
        </div>
      ) : null}
    </div>
  );
}

function KeyRow({
  control,
  value,
  active,
  index,
  rowRef,
  onFocus,
  onAnswer,
}: {
  control: Control;
  value: Answer | undefined;
  active: boolean;
  index: number;
  rowRef: (element: HTMLElement | null) => void;
  onFocus: () => void;
  onAnswer: (value: Answer | undefined) => void;
}) {
  const id = `key-${index}`;
  const hasChoices = control.choices.length > 0;
  return (
    <div
      class={`key-row ${active ? "active" : ""} ${value !== undefined ? "answered" : ""}`}
      data-row
      data-key={control.key}
      role={hasChoices ? "radiogroup" : "group"}
      aria-labelledby={id}
      tabIndex={hasChoices ? 0 : -1}
      ref={hasChoices ? rowRef : null}
      onFocusIn={onFocus}
    >
      <div class="key-head">
        <span class="key-name" id={id}>
          {control.key}
        </span>
        {control.shape === "stars" || control.shape === "choices" || control.shape === "number" ? (
          <span class="muted small">
            {control.min} to {control.max}
            {control.step ? `, step ${control.step}` : ""}
          </span>
        ) : null}
      </div>
      {control.description ? <p class="muted small description">{control.description}</p> : null}
      {hasChoices ? (
        <div class={`choices ${control.shape}`}>
          {control.choices.map((choice, k) => {
            const selected = sameAnswer(choice.answer, value);
            const lit =
              control.shape === "stars" && value?.kind === "score" && choice.answer.kind === "score" && choice.answer.score <= value.score;
            return (
              <button
                type="button"
                key={choice.label}
                role="radio"
                aria-checked={selected}
                tabIndex={-1}
                class={`choice ${selected ? "selected" : ""} ${lit ? "lit" : ""} ${thumbClass(choice.answer)}`}
                data-choice={choice.label}
                onClick={() => onAnswer(selected ? undefined : choice.answer)}
                title={control.shape === "stars" ? `${choice.label} of 5` : undefined}
              >
                {k < 9 ? <kbd>{k + 1}</kbd> : null}
                <span>{control.shape === "stars" ? "★" : choice.label}</span>
              </button>
            );
          })}
        </div>
      ) : control.shape === "number" ? (
        <input
          type="number"
          min={control.min}
          max={control.max}
          step={control.step || "any"}
          ref={rowRef as (element: HTMLInputElement | null) => void}
          value={value?.kind === "score" ? value.score : ""}
          onInput={(e) => {
            const text = e.currentTarget.value;
            onAnswer(text === "" ? undefined : { kind: "score", score: Number(text) });
          }}
        />
      ) : (
        <textarea
          rows={2}
          ref={rowRef as (element: HTMLTextAreaElement | null) => void}
          value={value?.kind === "text" ? value.text : ""}
          placeholder="Free text"
          onInput={(e) => onAnswer({ kind: "text", text: e.currentTarget.value })}
        />
      )}
    </div>
  );
}

function thumbClass(answer: Answer): string {
  if (answer.kind !== "thumb") return "";
  return answer.thumb === Thumb.UP ? "up" : "down";
}

function KeyHelp({ onClose }: { onClose: () => void }) {
  const keys: [string, string][] = [
    ["1 – 9", "pick a choice of the current key (then go to the next key)"],
    ["← →", "change the choice"],
    ["Tab, ↑ ↓", "move between keys"],
    ["Enter", "submit (or take the next item after a lease expired)"],
    ["Ctrl + Enter", "submit from a text field"],
    ["Esc", "leave a text field"],
    ["s", "skip this item"],
    ["?", "show or hide these keys"],
  ];
  return (
    <div class="card help" role="dialog" aria-label="Keyboard shortcuts" data-testid="help">
      <h2>Keys</h2>
      <dl>
        {keys.map(([key, what]) => (
          <div key={key}>
            <dt>
              <kbd>{key}</kbd>
            </dt>
            <dd>{what}</dd>
          </div>
        ))}
      </dl>
      <button type="button" data-native onClick={onClose}>
        Close <kbd>Esc</kbd>
      </button>
    </div>
  );
}

function describeValue(feedback: Feedback): string {
  switch (feedback.value.case) {
    case "thumb":
      return feedback.value.value === Thumb.UP ? "up" : feedback.value.value === Thumb.DOWN ? "down" : "no vote";
    case "score":
      return `score ${feedback.value.value}`;
    case "label":
      return `label “${feedback.value.value}”`;
    default:
      return "";
  }
}

function UserFeedback({ context }: { context: GetItemContextResponse | string | undefined }) {
  if (context === undefined) return null;
  if (typeof context === "string") {
    return (
      <p class="note muted small" data-testid="context-error">
        End users' feedback is not available: {context}
      </p>
    );
  }
  const feedback = context.userFeedback;
  return (
    <section class="user-feedback card" aria-labelledby="user-feedback-title">
      <h3 id="user-feedback-title">
        End users' feedback <span class="muted small">({feedback.length})</span>
      </h3>
      {feedback.length === 0 ? <p class="muted small">None on this trace.</p> : null}
      <ul>
        {feedback.map((f) => (
          <li key={f.feedbackId}>
            <span class="key-name">{f.key}</span>{" "}
            <span class={`vote ${f.value.case === "thumb" ? (f.value.value === Thumb.UP ? "up" : "down") : ""}`}>{describeValue(f)}</span>
            {f.comment ? <q class="comment">{f.comment}</q> : null}
            {f.correction ? (
              <div class="small">
                <span class="muted">correction:</span> {f.correction}
              </div>
            ) : null}
          </li>
        ))}
      </ul>
    </section>
  );
}
