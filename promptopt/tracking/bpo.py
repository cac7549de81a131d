"""``bpo eval`` and ``bpo build-data``, tracked: the job's settings, its numbers, its summary files.

Why after the job, not during it: both are one pass over items whose result is a summary (win
rates with intervals; kept / dropped counts), journalled item by item and continued by rerunning
the same job into the same output. So the tracker's run is written once the job returns — also
when it was stopped early (``promptopt.stopped`` tag) — and a rerun into the same output continues
the same tracker run (its id in ``OUT/tracking.json``; build-data: ``data.tracking.json`` beside
``data.jsonl``).

- eval: per test set ``<set>.win_pct``, ``tie_pct``, ``loss_pct``, ``delta_wr``, ``ci_low``,
  ``ci_high``, ``n`` and the counts of unparsed verdicts and errors; summary.json, summary.md,
  winrate.png and eval_config.json as artifacts.
- build-data: ``kept``, ``dropped``, ``dropped.<reason>``, ``total``, ``resumed``, ``processed``,
  ``seconds``; the settings file and the counts (``build_report.json``) as artifacts.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptopt.tracking.base import TRACKING_FILE, TrackSpec, flatten_params, numeric_leaves, parse_track
from promptopt.tracking.safe import SafeTracker

if TYPE_CHECKING:
    from promptopt.evaluators.pairwise_eval import EvalJob, EvalSummary
    from promptopt.optimizers.bpo.build import BuildDataJob, BuildReport


def job_params(job: Any) -> dict[str, str]:
    """A job dataclass as flat text parameters (paths as text, secrets redacted)."""
    return flatten_params(json.loads(json.dumps(dataclasses.asdict(job), default=str)))


def _label(testset: str) -> str:
    """A test set's name as a metric prefix (a file path: its stem)."""
    name = Path(testset).stem if re.search(r"[/\\]", testset) else testset
    return re.sub(r"[^0-9A-Za-z_\-]", "_", name) or "testset"


def _track(
    tracker: TrackSpec,
    state_file: Path,
    *,
    kind: str,
    tags: Mapping[str, str],
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    artifacts: list[Path],
    text: Mapping[str, str] = {},  # noqa: B006 - read only
) -> None:
    """One tracker run, written at once and closed (see the module docstring)."""
    safe = SafeTracker(parse_track(tracker))
    safe.start(
        state_file=state_file,
        run_name=state_file.parent.name if kind == "bpo-eval" else state_file.name.split(".")[0],
        tags={"promptopt.kind": kind, **tags},
        resume=state_file.exists(),
    )
    safe.log_params(params)
    safe.log_metrics(metrics, 0)
    for name, body in text.items():
        safe.log_text(body, name)
    for path in artifacts:
        if path.exists():
            safe.log_artifact(path)
    safe.close()


def log_eval(track: TrackSpec, job: EvalJob, summary: EvalSummary) -> None:
    """Log a finished (or stopped) ``bpo eval`` job to ``track`` (never raises for the store)."""
    from promptopt.evaluators.pairwise_eval import CHART_FILE, CONFIG_FILE, SUMMARY_JSON, SUMMARY_MD

    out = Path(job.out)
    metrics: dict[str, float] = {}
    for r in summary.results:
        row = {k: v for k, v in r.to_json().items() if k != "testset"}
        metrics.update(numeric_leaves(row, f"{_label(r.testset)}."))
    tags = {"promptopt.run_dir": str(out.resolve()), "promptopt.testsets": ",".join(job.testsets)}
    if summary.stopped:
        tags["promptopt.stopped"] = summary.stopped
    files = [out / name for name in (SUMMARY_JSON, SUMMARY_MD, CHART_FILE, CONFIG_FILE)]
    _track(track, out / TRACKING_FILE, kind="bpo-eval", tags=tags, params=job_params(job), metrics=metrics,
           artifacts=files)  # fmt: skip


def log_build_data(track: TrackSpec, job: BuildDataJob, report: BuildReport) -> None:
    """Log a finished (or stopped) ``bpo build-data`` job to ``track`` (never raises for the store)."""
    from promptopt.optimizers.bpo.jobs import config_path

    out = Path(job.out)
    settings = config_path(out)
    state_file = settings.with_name(settings.name.replace(".config.json", ".tracking.json"))
    counts = report.to_json()
    metrics = numeric_leaves({k: v for k, v in counts.items() if k not in ("dropped", "stopped")})
    metrics["dropped"] = float(sum(report.dropped.values()))
    metrics.update(numeric_leaves(report.dropped, "dropped."))
    tags = {"promptopt.run_dir": str(out.resolve().parent), "promptopt.out": str(out.resolve())}
    if report.stopped:
        tags["promptopt.stopped"] = report.stopped
    text = {"build_report.json": json.dumps(counts, indent=2, default=str)}
    _track(track, state_file, kind="bpo-build-data", tags=tags, params=job_params(job), metrics=metrics,
           artifacts=[settings], text=text)  # fmt: skip
