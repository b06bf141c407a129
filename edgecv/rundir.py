"""Run directories: their default names, and claiming one for a new run."""

from __future__ import annotations

import shutil
from pathlib import Path

from edgecv.core.errors import EdgecvError

STUDY_FILE = "study.json"  # a study folder's record: what was asked, each model's outcome, the front


def run_name(model: str, data: str) -> str:
    """<model>-<data>, with a folder data set named by its last path part."""
    return f"{model}-{Path(data.partition(':')[2]).name if data.startswith('folder:') else data}"


def default_run_dir(model: str, data: str, root: Path = Path("runs")) -> Path:
    """runs/<model>-<data>, numbered -2, -3, ... when taken."""
    base = root / run_name(model, data)
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def claim_run_dir(run_dir: Path, overwrite: bool) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise EdgecvError(f"--out {run_dir} is a file, not a folder")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if not overwrite:
            raise EdgecvError(f"run directory {run_dir} already exists; use --resume {run_dir} to continue it, "
                              "--overwrite to replace it, or another --out")
        if not (run_dir / "config.json").is_file():
            raise EdgecvError(f"{run_dir} is not an edgecv run directory; refusing to overwrite it")
        shutil.rmtree(run_dir)
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgecvError(f"cannot create run directory {run_dir}: {exc.strerror}") from None


def run_paths(run_dir: Path) -> dict[str, Path]:
    """The files training keeps in a run directory."""
    return {"last": run_dir / "checkpoints" / "last.pt", "best": run_dir / "checkpoints" / "best.pt",
            "history": run_dir / "history.csv", "metrics": run_dir / "metrics.json",
            "spec": run_dir / "spec.json", "config": run_dir / "config.json"}
