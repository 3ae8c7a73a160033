// Small pieces shared by the pages.
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { describeError } from "./api.js";

/** A load that runs when `deps` change and again every `everyMs` (0: once), with its error. */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: readonly unknown[], everyMs = 0) {
  const [value, setValue] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [round, setRound] = useState(0);
  const loader = useRef(load);
  loader.current = load;
  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async (): Promise<void> => {
      try {
        const loaded = await loader.current(controller.signal);
        if (controller.signal.aborted) return;
        setValue(() => loaded);
        setError(undefined);
      } catch (thrown) {
        if (!controller.signal.aborted) setError(describeError(thrown));
      }
      if (everyMs > 0 && !controller.signal.aborted) timer = setTimeout(run, everyMs);
    };
    void run();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, [...deps, round]);
  return { value, error, reload: () => setRound((r) => r + 1) };
}

export function ErrorNote({ children }: { children: ComponentChildren }) {
  return (
    <p class="note error" role="alert">
      {children}
    </p>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="note muted" role="status">
      Loading {what}…
    </p>
  );
}

/** A stacked bar of parts (SVG: no inline styles needed under the page's CSP). */
export function StackedBar({ parts, label }: { parts: { value: number; tone: string; name: string }[]; label: string }) {
  const total = parts.reduce((sum, part) => sum + part.value, 0);
  let x = 0;
  return (
    <svg class="stacked" viewBox="0 0 100 6" preserveAspectRatio="none" role="img" aria-label={label}>
      <rect class="track" x="0" y="0" width="100" height="6" rx="3" />
      {total > 0
        ? parts.map((part) => {
            const width = (part.value / total) * 100;
            const rect = <rect key={part.name} class={part.tone} x={x} y="0" width={width} height="6" />;
            x += width;
            return rect;
          })
        : null}
    </svg>
  );
}
