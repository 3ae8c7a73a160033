"""Time of the derived-table checks: `feedback verify`, `feedback repair` and the start-up check.

Run from the repository root (not part of `make bench`; about 2 minutes at 1M rows):

    .venv/bin/python bench/verify_bench.py                 # 1M stored rows
    .venv/bin/python bench/verify_bench.py --rows 3000000

Loads ``--rows`` feedback rows straight through storage (evaluation_bench.py's loader: real inserts into
``feedback``, whose views fill the derived tables, spread over 7 days), migrates, then times, each as the
user runs it (a whole process):

- ``feedback verify`` over every project and all time (the largest scope);
- ``feedback verify --project bench --since 1d`` (one day of seven);
- ``feedback repair`` over everything (nothing to correct: the cost of the check itself);
- a server start on a database never checked (the first start after upgrading: a full check), and a
  start after a clean stop (the check reads only revisions stored since the checkpoint): the
  ``derived_tables_checked`` log line's duration.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from evaluation_bench import storage  # noqa: E402

from tests.support.server_process import ServerProcess, child_environment  # noqa: E402


def timed_cli(data_dir: Path, *arguments: str) -> tuple[float, int, str]:
    began = time.perf_counter()
    done = subprocess.run(  # noqa: S603  (our own interpreter)
        [sys.executable, "-m", "feedback_service", *arguments, "--data-dir", str(data_dir)],
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    return time.perf_counter() - began, done.returncode, done.stdout.strip().splitlines()[-1] if done.stdout else ""


def start_up_check_s(data_dir: Path) -> tuple[float, int]:
    with ServerProcess(data_dir) as server:
        (event,) = [e for e in server.log_events() if e.get("event") == "derived_tables_checked"]
        server.terminate()
    return float(event["duration_ms"]) / 1000, int(event["revisions_checked"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="verify-bench-") as scratch:
        data_dir = Path(scratch) / "data"
        subprocess.run(  # noqa: S603
            [sys.executable, "-m", "feedback_service", "migrate", "--data-dir", str(data_dir)],
            env=child_environment(),
            check=True,
            capture_output=True,
        )
        window_end_us = int(datetime.now(UTC).timestamp() * 1_000_000)
        loaded = storage(data_dir, "load", 0, options.rows, window_end_us, 30)
        print(f"loaded {options.rows:,} rows in {loaded['load_s']:.1f} s", flush=True)
        rows: list[tuple[str, float, str]] = []
        first_start_s, first_checked = start_up_check_s(data_dir)
        rows.append(("start-up check, database never checked (full)", first_start_s, f"{first_checked:,} rows"))
        again_s, again_checked = start_up_check_s(data_dir)
        rows.append(("start-up check after a clean stop", again_s, f"{again_checked:,} rows"))
        for label, arguments in (
            ("feedback verify (every project, all time)", ["verify"]),
            ("feedback verify --project bench --since 1d", ["verify", "--project", "bench", "--since", "1d"]),
            ("feedback repair (nothing to correct)", ["repair"]),
        ):
            seconds, code, last = timed_cli(data_dir, *arguments)
            rows.append((label, seconds, f"exit {code}: {last}"))
        per_million = options.rows / 1_000_000
        print(f"\n| check ({options.rows:,} rows) | seconds | per 1M rows | result |")
        print("|---|---|---|---|")
        for label, seconds, note in rows:
            print(f"| {label} | {seconds:.2f} | {seconds / per_million:.2f} | {note} |")
        print(json.dumps({label: round(seconds, 3) for label, seconds, _ in rows}))


if __name__ == "__main__":
    main()
