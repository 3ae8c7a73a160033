// The console's pages live in the URL fragment (#/queues, #/review/<queue>, …): the service serves one
// document at /, and the fragment never reaches the server. A console link arrives as #link=<token>
// and is swapped for #/ at start (session.ts).
import { useEffect, useState } from "preact/hooks";

export type Route =
  | { page: "queues" }
  | { page: "review"; queueId: string }
  | { page: "agreement"; queueId: string }
  | { page: "dashboard"; model: string };

export function parseRoute(hash: string): Route {
  const [page = "", ...rest] = hash.replace(/^#\/?/, "").split("/");
  const arg = rest.map((part) => decodeURIComponent(part)).join("/");
  switch (page) {
    case "review":
      return { page: "review", queueId: arg };
    case "agreement":
      return { page: "agreement", queueId: arg };
    case "dashboard":
      return { page: "dashboard", model: arg };
    default:
      return { page: "queues" };
  }
}

export function href(route: Route): string {
  switch (route.page) {
    case "queues":
      return "#/queues";
    case "review":
      return `#/review/${encodeURIComponent(route.queueId)}`;
    case "agreement":
      return `#/agreement/${encodeURIComponent(route.queueId)}`;
    case "dashboard":
      return route.model ? `#/dashboard/${encodeURIComponent(route.model)}` : "#/dashboard";
  }
}

export function navigate(route: Route): void {
  location.hash = href(route);
}

/** The current route, following the fragment. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const changed = (): void => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return route;
}
