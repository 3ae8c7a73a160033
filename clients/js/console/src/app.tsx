// The console's shell: sign-in, the header with the session, and the page of the current route.
import { useMemo, useState } from "preact/hooks";
import { createApi } from "./api.js";
import { Agreement } from "./agreement.js";
import { Dashboard } from "./dashboard.js";
import { Queues } from "./queues.js";
import { Review } from "./review.js";
import { href, useRoute } from "./route.js";
import { endSession, saveSession, sessionOfKey, sessionOfLink, type Session } from "./session.js";

export function App({ initial }: { initial: Session | undefined }) {
  const [session, setSession] = useState(initial);
  const route = useRoute();
  const api = useMemo(() => (session ? createApi(session, location.origin) : undefined), [session]);
  if (!session || !api) {
    return (
      <SignIn
        onSignIn={(next) => {
          saveSession(sessionStorage, next);
          setSession(next);
        }}
      />
    );
  }
  const signOut = (): void => {
    endSession(sessionStorage);
    setSession(undefined);
    history.replaceState(null, "", location.pathname);
  };
  let page;
  switch (route.page) {
    case "review":
      page = <Review key={route.queueId} api={api} session={session} queueId={route.queueId} />;
      break;
    case "agreement":
      page = <Agreement key={route.queueId} api={api} session={session} queueId={route.queueId} />;
      break;
    case "dashboard":
      page = <Dashboard key={route.model} api={api} session={session} model={route.model} />;
      break;
    default:
      page = <Queues api={api} session={session} />;
  }
  const current = route.page === "dashboard" ? "dashboard" : "queues";
  // Reviewer links review; dashboards are for read-only links and API keys (the server enforces it).
  const dashboards = session.kind === "key" || session.readOnly;
  return (
    <>
      <header class="top">
        <a class="brand" href={href({ page: "queues" })}>
          Feedback console
        </a>
        <nav aria-label="Pages">
          <a href={href({ page: "queues" })} aria-current={current === "queues" ? "page" : undefined}>
            Queues
          </a>
          {dashboards ? (
            <a href={href({ page: "dashboard", model: "" })} aria-current={current === "dashboard" ? "page" : undefined}>
              Dashboard
            </a>
          ) : null}
        </nav>
        <div class="who">
          <span data-testid="who">
            {session.reviewer || "operator"}
            <span class="muted">
              {" · "}
              {session.kind === "key" ? "API key" : session.readOnly ? "read-only link" : "reviewer link"}
              {session.project ? ` · ${session.project}` : ""}
            </span>
          </span>
          <button type="button" class="quiet" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main">{page}</main>
    </>
  );
}

function SignIn({ onSignIn }: { onSignIn: (session: Session) => void }) {
  const [key, setKey] = useState("");
  const [project, setProject] = useState("");
  const [reviewer, setReviewer] = useState("");
  const submit = (event: Event): void => {
    event.preventDefault();
    const token = key.trim();
    if (!token) return;
    // A console link pasted here works too.
    onSignIn(token.startsWith("fbc1.") ? sessionOfLink(token) : sessionOfKey(token, project, reviewer));
  };
  return (
    <main class="signin">
      <h1>Feedback console</h1>
      <p>
        Reviewers: open the console link you were given; it signs you in. Operators: paste an API key with the read or
        annotate scope.
      </p>
      <form onSubmit={submit} class="card">
        <label>
          API key
          <input
            type="password"
            name="api-key"
            autoComplete="off"
            required
            autoFocus
            value={key}
            onInput={(e) => setKey(e.currentTarget.value)}
          />
        </label>
        <label>
          Project <span class="muted">(needed with the admin key)</span>
          <input name="project" value={project} onInput={(e) => setProject(e.currentTarget.value)} />
        </label>
        <label>
          Reviewer id <span class="muted">(who you annotate as)</span>
          <input name="reviewer" value={reviewer} onInput={(e) => setReviewer(e.currentTarget.value)} />
        </label>
        <button type="submit" class="primary">
          Sign in
        </button>
        <p class="muted small">The key stays in this tab (sessionStorage) and is sent only to this service.</p>
      </form>
    </main>
  );
}
