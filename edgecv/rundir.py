"""A run directory, the unit of work: every artefact's path, the list of model variants, each pipeline stage's
inputs and outputs, and how runs are named and claimed. Every stage, report and command asks this module
where a file lives, so a new variant kind is one entry in :data:`VARIANTS`. Torch-free.

    runs/<model>-<data>/
      config.json  spec.json  history.csv  metrics.json
      checkpoints/last.pt  checkpoints/best.pt        (written atomically)
      model.pt  model.onnx  model.int8.onnx  model.int8-dynamic.onnx  model.fp16.onnx  model.pte  model.int8.pte
      model.uint8-input.onnx  model.uint8-input.pt   (export --uint8-input)
      model.int8-openvino.onnx   (quantize --tune-for openvino: not a VARIANT, as ONNX Runtime runs it slower)
      export.json  quantize.json  eval/<variant>.json  bench.json  report.html  report.md  plots/*.png
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from edgecv.core.errors import EdgecvError

CHECKPOINTS = "checkpoints"
MODEL_STEM, UINT8_STEM = "model", "model.uint8-input"  # exported files: model.onnx, model.uint8-input.onnx, ...
ONNX_FP32, INT8_STATIC = "model.onnx", "model.int8.onnx"
QUANTIZED = (INT8_STATIC, "model.int8-dynamic.onnx", "model.fp16.onnx")  # what edgecv quantize writes
# every model file a run directory may hold, in the order bench measures them
VARIANTS = ("checkpoints/best.pt", "model.pt", "model.onnx", "model.fp16.onnx", "model.int8.onnx",
            "model.int8-dynamic.onnx", "model.uint8-input.onnx", "model.uint8-input.pt", "model.pte",
            "model.int8.pte")
STAGES = ("train", "export", "quantize", "bench", "report")
STUDY_FILE = "study.json"  # a study folder's record: what was asked, each model's outcome, the front


@dataclass(frozen=True)
class RunDir:
    """The files of one run directory (they need not exist yet)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def of(cls, model_file: Path | str) -> RunDir:
        """The run directory a model file sits in: its folder, or the run above ``checkpoints/``."""
        folder = Path(model_file).parent
        return cls(folder.parent if folder.name == CHECKPOINTS else folder)

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def spec(self) -> Path:
        return self.path / "spec.json"

    @property
    def history(self) -> Path:
        return self.path / "history.csv"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def onnx(self) -> Path:
        return self.path / ONNX_FP32

    @property
    def torchscript(self) -> Path:
        return self.path / "model.pt"

    @property
    def export_record(self) -> Path:
        return self.path / "export.json"

    @property
    def quantize_record(self) -> Path:
        return self.path / "quantize.json"

    @property
    def bench(self) -> Path:
        return self.path / "bench.json"

    @property
    def report_html(self) -> Path:
        return self.path / "report.html"

    @property
    def report_md(self) -> Path:
        return self.path / "report.md"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def explain(self) -> Path:
        return self.path / "explain"

    def model_file(self, suffix: str, uint8_input: bool = False) -> Path:
        """The exported file with this suffix (``.onnx``, ``.pt``, ``.pte``): model.* or model.uint8-input.*."""
        return self.path / f"{UINT8_STEM if uint8_input else MODEL_STEM}{suffix}"

    def eval_record(self, model_file: Path, runtime: str = "onnxruntime") -> Path:
        """eval/<file>.json (eval/<file>.openvino.json for the same ONNX file on OpenVINO)."""
        return self.path / "eval" / f"{Path(model_file).name}{'.openvino' if runtime == 'openvino' else ''}.json"

    def is_run(self) -> bool:
        """Whether this folder holds an edgecv run (its config.json)."""
        return self.config.is_file()

    def variants(self) -> list[Path]:
        """Every model file the directory holds, in bench's order."""
        return [self.path / name for name in VARIANTS if (self.path / name).is_file()]

    def variant_named(self, name: str) -> Path | None:
        """The model file of this directory called ``name`` (a bench row's file name), if it is there."""
        return next((self.path / rel for rel in VARIANTS if Path(rel).name == name and (self.path / rel).is_file()),
                    None)

    def stage_files(self, stage: str) -> tuple[list[Path], list[Path]]:
        """(inputs, outputs) of a pipeline stage. Bench and report read every variant the pipeline writes, and
        any other variant present (an ExecuTorch or uint8-input export), so a new file makes them stale."""
        written = [self.best, self.torchscript, self.onnx, *(self.path / q for q in QUANTIZED)]
        variants = written + [v for v in self.variants() if v not in written]
        return {
            "train": ([self.config], [self.best, self.metrics, self.history]),
            "export": ([self.best], [self.onnx, self.torchscript]),
            "quantize": ([self.onnx], [*(self.path / q for q in QUANTIZED), self.quantize_record]),
            "bench": (variants, [self.bench]),
            "report": ([self.bench, self.history, self.metrics, *variants], [self.report_html, self.report_md]),
        }[stage]


def run_name(model: str, data: str) -> str:
    """<model>-<data> as a plain folder name: a folder data set named by its last path part, a model of another
    library or a user's module by its source and name (``torchvision-resnet18``, ``net-factory``)."""
    return f"{plain_model_name(model)}-{Path(data.partition(':')[2]).name if data.startswith('folder:') else data}"


def plain_model_name(model: str) -> str:
    """``torchvision:resnet18`` -> ``torchvision-resnet18``; ``path/net.py:build`` -> ``net-build``."""
    where, sep, name = model.rpartition(":")
    if not sep:
        return model
    where = Path(where).name.removesuffix(".py").rpartition(".")[2]
    return f"{where}-{name}"


def default_run_dir(model: str, data: str, root: Path = Path("runs")) -> Path:
    """runs/<model>-<data>, numbered -2, -3, ... when taken."""
    base = root / run_name(model, data)
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def claim_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Make ``run_dir`` ready for a new run: created, or replaced with ``overwrite`` when it holds a run."""
    run = RunDir(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise EdgecvError(f"--out {run_dir} is a file, not a folder")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if not overwrite:
            raise EdgecvError(f"run directory {run_dir} already exists; use --resume {run_dir} to continue it, "
                              "--overwrite to replace it, or another --out")
        if not run.is_run():
            raise EdgecvError(f"{run_dir} is not an edgecv run directory; refusing to overwrite it")
        shutil.rmtree(run_dir)
    try:
        run.checkpoints.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgecvError(f"cannot create run directory {run_dir}: {exc.strerror}") from None
