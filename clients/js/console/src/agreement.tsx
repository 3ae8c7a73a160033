// Agreement of a queue's reviewers, per key (GetAgreement): Cohen's kappa for two reviewers,
// Krippendorff's alpha otherwise, with the items, reviewers and ratings behind it.
import { AgreementMethod, type ItemDisagreement, type KeyAgreement } from "../../src/gen/feedback/v1/annotation_pb.js";
import type { Api } from "./api.js";
import { safeHref } from "./markdown.js";
import { href } from "./route.js";
import type { Session } from "./session.js";
import { agreementWords, count } from "./stats.js";
import { ErrorNote, Loading, useLoad } from "./ui.js";

const METHODS: Record<AgreementMethod, string> = {
  [AgreementMethod.UNSPECIFIED]: "not computed",
  [AgreementMethod.COHEN_KAPPA]: "Cohen's κ",
  [AgreementMethod.KRIPPENDORFF_ALPHA_NOMINAL]: "Krippendorff's α (nominal)",
  [AgreementMethod.KRIPPENDORFF_ALPHA_INTERVAL]: "Krippendorff's α (interval)",
};

export function Agreement({ api, session, queueId }: { api: Api; session: Session; queueId: string }) {
  const queue = useLoad(
    async (signal) => (await api.annotation.listQueues({ project: session.project }, { signal })).queues.find((q) => q.queueId === queueId),
    [api, queueId],
  );
  const agreement = useLoad(
    async (signal) => (await api.annotation.getAgreement({ project: session.project, queueId }, { signal })).agreements,
    [api, queueId],
    10_000,
  );
  return (
    <section aria-labelledby="agreement-title">
      <header class="page-head">
        <h1 id="agreement-title">
          Agreement <span class="muted">{queue.value?.name ?? ""}</span>
        </h1>
        <a class="button" href={href({ page: "queues" })}>
          Back to the queues
        </a>
      </header>
      <p class="muted">
        Per key: Cohen's κ when exactly two reviewers rated thumbs or labels, otherwise Krippendorff's α (nominal for thumbs and
        labels, interval for scores). 1 is perfect agreement, 0 what chance gives, below 0 systematic disagreement. Only items
        rated by two or more reviewers count; a reviewer's latest rating of an item counts.
      </p>
      {agreement.error ? <ErrorNote>{agreement.error}</ErrorNote> : null}
      {!agreement.value && !agreement.error ? <Loading what="agreement" /> : null}
      {agreement.value && agreement.value.length === 0 ? <p class="note muted">No annotations in this queue yet.</p> : null}
      <div class="agreements">
        {agreement.value?.map((a) => (
          <KeyCard key={a.key} agreement={a} />
        ))}
      </div>
    </section>
  );
}

function KeyCard({ agreement }: { agreement: KeyAgreement }) {
  const value = agreement.value;
  return (
    <article class="card agreement" data-key={agreement.key}>
      <h2>{agreement.key}</h2>
      <p class="big" data-testid="agreement-value">
        {value === undefined ? "—" : value.toFixed(3)}
      </p>
      <p class="muted small method" data-testid="method">
        {METHODS[agreement.method]}
      </p>
      <p class="small">
        {value === undefined
          ? "Not computable yet: no item has two ratings, or every rating is the same."
          : `${agreementWords(value)} agreement`}
      </p>
      <dl class="progress">
        <div>
          <dt>Items</dt>
          <dd data-testid="items">{count(agreement.itemCount)}</dd>
        </div>
        <div>
          <dt>Reviewers</dt>
          <dd data-testid="reviewers">{count(agreement.reviewerCount)}</dd>
        </div>
        <div>
          <dt>Ratings</dt>
          <dd data-testid="ratings">{count(agreement.ratingCount)}</dd>
        </div>
      </dl>
      <Disagreements items={agreement.disagreements} />
    </article>
  );
}

// The items where reviewers disagreed most (at most 10, most disagreement first; see ItemDisagreement).
function Disagreements({ items }: { items: ItemDisagreement[] }) {
  if (items.length === 0) return null;
  return (
    <div class="table-scroll disagreements">
      <table data-testid="disagreements">
        <caption class="small muted">Most disagreed items</caption>
        <thead>
          <tr>
            <th scope="col">Trace</th>
            <th scope="col">Ratings</th>
          </tr>
        </thead>
        <tbody>
          {items.map((item) => {
            const link = item.traceUrl ? safeHref(item.traceUrl) : undefined;
            const name = item.spanId ? `${item.traceId} / ${item.spanId}` : item.traceId;
            return (
              <tr key={`${item.traceId}\u0000${item.spanId}`} data-testid="disagreement">
                <td>
                  {link ? (
                    <a href={link} target="_blank" rel="noopener noreferrer">
                      <code>{name}</code>
                    </a>
                  ) : (
                    <code>{name}</code>
                  )}
                  <div class="small muted">
                    {count(item.distinctValueCount)} values in {count(item.ratingCount)} ratings
                  </div>
                </td>
                <td>
                  {item.ratings.map((r) => (
                    <span class="chip" key={r.reviewer} title={r.reviewer}>
                      {r.reviewer}: {r.value}
                    </span>
                  ))}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
