"""Put runs side by side: ``promptopt runs compare RUN...`` and ``promptopt runs list [DIR]``.

A run is any folder promptopt writes a job into: an OPRO run directory (either proposer), a BPO
optimizer run directory, a ``bpo train`` output folder, a ``bpo eval`` folder. :func:`run_kind`
tells which (from the files, never the folder's name) and :data:`READERS` maps each kind to the
reader that turns it into a :class:`~promptopt.runs_compare.model.RunSummary`; what "score" means
for each kind is written in :mod:`.opro_runs` and :mod:`.bpo_runs`. Reading never writes into a
run (a running run is seen through its lock, never waited on).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from promptopt.errors import RunDirError
from promptopt.records import read_json_object
from promptopt.runs import CONFIG_FILE, JOURNAL_FILE
from promptopt.runs_compare.bpo_runs import is_eval_folder, is_train_folder, read_eval, read_train
from promptopt.runs_compare.model import Curve, RunSummary, Score
from promptopt.runs_compare.opro_runs import read_bpo_run, read_opro

__all__ = ["READERS", "Curve", "RunSummary", "Score", "compare_runs", "list_runs", "run_kind", "summarize"]

#: a run's kind → its reader
READERS: Mapping[str, Callable[[Path], RunSummary]] = {
    "opro": read_opro,
    "bpo": read_bpo_run,
    "bpo-eval": read_eval,
    "bpo-train": read_train,
}

NOT_A_RUN = (
    "no config.json with a journal.jsonl (an OPRO or BPO run), eval_config.json (bpo eval) or "
    "bpo_rewriter.json / checkpoints (bpo train)"
)


def run_kind(path: Path) -> str | None:
    """The kind of run ``path`` holds (a key of :data:`READERS`), or None when it holds none.
    A run directory of a kind no reader knows is a RunDirError naming it."""
    if is_train_folder(path):  # before config.json: a saved model has one of its own
        return "bpo-train"
    if (path / CONFIG_FILE).is_file() and (path / JOURNAL_FILE).is_file():
        cfg = read_json_object(path / CONFIG_FILE, error=RunDirError, what="run config")
        kind = str(cfg.get("kind", "opro"))  # runs from before kinds were recorded are OPRO's
        if kind not in READERS:
            raise RunDirError(f"{path} holds a run of kind {kind!r}, which runs compare cannot read")
        return kind
    if is_eval_folder(path):
        return "bpo-eval"
    return None


def summarize(path: str | Path) -> RunSummary:
    """The run in ``path``; a one-line RunDirError when it is not one."""
    p = Path(path)
    if not p.is_dir():
        raise RunDirError(f"{p} is not a directory (runs compare takes run directories)")
    kind = run_kind(p)
    if kind is None:
        raise RunDirError(f"{p} is not a run: {NOT_A_RUN}")
    return READERS[kind](p)


def compare_runs(paths: Iterable[str | Path]) -> list[RunSummary]:
    """Every run named, in the order given; the first that is not a run is a RunDirError."""
    out = [summarize(p) for p in paths]
    if not out:
        raise RunDirError("runs compare needs at least one run directory")
    return out


def list_runs(root: str | Path = "runs") -> tuple[list[RunSummary], list[str]]:
    """(the runs directly inside ``root`` — or ``root`` itself when it is one —, oldest first;
    a note for each folder that is not a run or cannot be read)."""
    base = Path(root)
    if not base.is_dir():
        raise RunDirError(f"{base} is not a directory")
    try:
        itself = run_kind(base) is not None
    except RunDirError:
        itself = True  # a run directory of its own: summarize says what is wrong with it
    folders = (
        [base] if itself else sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    )
    runs, notes = [], []
    for folder in folders:
        try:
            runs.append(summarize(folder))
        except RunDirError as exc:
            notes.append(f"skipped: {exc}")
    runs.sort(key=lambda s: (s.started is None, s.started or 0.0, s.path))
    return runs, notes
