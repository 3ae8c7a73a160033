// Queues: name, instructions, progress (pending, in progress, done) and what each reviewer did.
import type { Ref } from "preact";
import { useEffect, useRef } from "preact/hooks";
import type { GetQueueStatsResponse, Queue } from "../../src/gen/feedback/v1/annotation_pb.js";
import type { Api } from "./api.js";
import { Formatted } from "./content.js";
import { ContentFormat } from "../../src/gen/feedback/v1/annotation_pb.js";
import { href } from "./route.js";
import type { Session } from "./session.js";
import { count } from "./stats.js";
import { ErrorNote, Loading, StackedBar, useLoad } from "./ui.js";

const REFRESH_MS = 5_000;

interface Loaded {
  queues: Queue[];
  stats: Map<string, GetQueueStatsResponse | string>;
}

export function Queues({ api, session }: { api: Api; session: Session }) {
  const { value, error } = useLoad<Loaded>(
    async (signal) => {
      const { queues } = await api.annotation.listQueues({ project: session.project }, { signal });
      const stats = new Map<string, GetQueueStatsResponse | string>();
      await Promise.all(
        queues.map(async (queue) => {
          try {
            stats.set(queue.queueId, await api.annotation.getQueueStats({ project: session.project, queueId: queue.queueId }, { signal }));
          } catch {
            stats.set(queue.queueId, "no stats");
          }
        }),
      );
      return { queues, stats };
    },
    [api],
    REFRESH_MS,
  );
  const first = useRef<HTMLAnchorElement>(null);
  const focused = useRef(false);
  useEffect(() => {
    // Keyboard first: Enter starts reviewing the first queue.
    if (value && !focused.current && first.current) {
      first.current.focus();
      focused.current = true;
    }
  }, [value]);
  return (
    <section aria-labelledby="queues-title">
      <h1 id="queues-title">Queues</h1>
      {error ? <ErrorNote>{error}</ErrorNote> : null}
      {!value && !error ? <Loading what="queues" /> : null}
      {value && value.queues.length === 0 ? <p class="note muted">No queues in this project yet.</p> : null}
      <div class="queues">
        {value?.queues.map((queue, index) => (
          <QueueCard
            key={queue.queueId}
            queue={queue}
            stats={value.stats.get(queue.queueId)}
            canReview={!session.readOnly}
            linkRef={index === 0 ? first : null}
          />
        ))}
      </div>
    </section>
  );
}

function QueueCard({
  queue,
  stats,
  canReview,
  linkRef,
}: {
  queue: Queue;
  stats: GetQueueStatsResponse | string | undefined;
  canReview: boolean;
  linkRef: Ref<HTMLAnchorElement>;
}) {
  const known = typeof stats === "object" ? stats : undefined;
  const total = Number(known?.totalCount ?? 0);
  const done = Number(known?.doneCount ?? 0);
  return (
    <article class="card queue" data-queue={queue.queueId}>
      <header>
        <h2>{queue.name}</h2>
        <span class="muted small">
          {queue.keys.join(", ")} · {Math.max(1, queue.reviewersPerItem)} reviewer{queue.reviewersPerItem > 1 ? "s" : ""} per item
        </span>
      </header>
      {queue.instructions ? (
        <div class="instructions">
          <Formatted text={queue.instructions} format={ContentFormat.MARKDOWN} />
        </div>
      ) : null}
      {known ? (
        <>
          <StackedBar
            label={`${done} of ${total} done`}
            parts={[
              { name: "done", value: done, tone: "done" },
              { name: "in progress", value: Number(known.inProgressCount), tone: "progress" },
              { name: "pending", value: Number(known.pendingCount), tone: "pending" },
            ]}
          />
          <dl class="progress">
            <div>
              <dt>Pending</dt>
              <dd data-testid="pending">{count(known.pendingCount)}</dd>
            </div>
            <div>
              <dt>In progress</dt>
              <dd data-testid="in-progress">{count(known.inProgressCount)}</dd>
            </div>
            <div>
              <dt>Done</dt>
              <dd data-testid="done">
                {count(done)} <span class="muted">of {count(total)}</span>
              </dd>
            </div>
          </dl>
          {known.reviewers.length ? (
            <table class="reviewers">
              <thead>
                <tr>
                  <th scope="col">Reviewer</th>
                  <th scope="col" class="num">Done</th>
                  <th scope="col" class="num">In progress</th>
                  <th scope="col" class="num">Skipped</th>
                </tr>
              </thead>
              <tbody>
                {known.reviewers.map((r) => (
                  <tr key={r.reviewer}>
                    <td>{r.reviewer}</td>
                    <td class="num">{count(r.doneCount)}</td>
                    <td class="num">{count(r.inProgressCount)}</td>
                    <td class="num">{count(r.skippedCount)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
        </>
      ) : (
        <p class="muted small">{typeof stats === "string" ? stats : "…"}</p>
      )}
      <footer class="actions">
        {canReview ? (
          <a class="button primary" href={href({ page: "review", queueId: queue.queueId })} ref={linkRef}>
            Start reviewing
          </a>
        ) : null}
        <a class="button" href={href({ page: "agreement", queueId: queue.queueId })}>
          Agreement
        </a>
      </footer>
    </article>
  );
}
