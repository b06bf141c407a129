"""Your own ``nn.Module``: ``--model path/to/net.py:factory`` or ``--model package.module:factory``.

This runs your code. ``factory(num_classes)`` returns an ``nn.Module`` that maps (N, C, H, W) float images
to (N, num_classes) logits; it may also take ``in_channels`` and ``img_size`` as keyword arguments, which
edgecv passes when its signature names them, and carry an ``input_size`` attribute, its default --img-size.
A run records where the code came from (its path and SHA-256), and whatever builds the model again (export,
bench and eval of the checkpoint, explain, report, resume) refuses in one line when the file has changed
since, unless told to trust it (``--trust-code``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from pathlib import Path
from typing import Any

from torch import nn

from edgecv.core.errors import ModelError
from edgecv.models.base import FALLBACKS, ModelEntry, other_libraries

DEFAULT_SIZE = 224  # --img-size when none is given
MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def is_user_code(name: str) -> bool:
    """``x.py:factory`` or ``package.module:factory``."""
    where, sep, factory = name.rpartition(":")
    return bool(sep) and factory.isidentifier() and (where.endswith(".py") or bool(MODULE_NAME.match(where)))


def code_file(name: str) -> Path:
    """The file that defines ``name``'s factory: the .py path, or the module's source file."""
    where = name.rpartition(":")[0]
    if where.endswith(".py"):
        path = Path(where).expanduser()
        if not path.is_file():
            raise ModelError(f"--model {name}: {path} does not exist")
        return path.resolve()
    try:
        spec = importlib.util.find_spec(where)
    except (ImportError, ValueError):  # a parent package that does not exist
        spec = None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        raise ModelError(f"--model {name}: no module {where} is importable here (is it installed or on "
                         f"PYTHONPATH?); {other_libraries()}")
    return Path(spec.origin).resolve()


def absolute(name: str) -> str:
    """``name`` with a .py path made absolute, so a run builds its model from any working directory."""
    where, _, factory = name.rpartition(":")
    return f"{code_file(name)}:{factory}" if where.endswith(".py") else name


def code_sha256(name: str) -> str:
    return hashlib.sha256(code_file(name).read_bytes()).hexdigest()


def code_record(name: str) -> dict[str, str]:
    """What a run keeps of the code it was built from."""
    return {"path": str(code_file(name)), "sha256": code_sha256(name)}


def check_unchanged(name: str, record: dict[str, str] | None, trust_code: bool) -> None:
    """Refuse to run ``name``'s code again when its file's SHA-256 differs from the run's record."""
    if trust_code or not record:
        return
    now = code_sha256(name)
    if now != record.get("sha256"):
        raise ModelError(f"{record.get('path')} has changed since this run was built from it (SHA-256 "
                         f"{str(record.get('sha256'))[:12]}... then, {now[:12]}... now), and building the model runs "
                         "that code: pass --trust-code to build it from the file as it is now")


def _factory(name: str) -> Any:
    where, _, attr = name.rpartition(":")
    path = code_file(name)
    try:
        if where.endswith(".py"):
            unique = f"edgecv_user_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
            spec = importlib.util.spec_from_file_location(unique, path)
            module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
            sys.modules[unique] = module
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(where)
    except Exception as exc:  # the user's module may raise anything while it is imported
        raise ModelError(f"--model {name}: importing {path.name} raised {type(exc).__name__}: "
                         f"{(str(exc).splitlines() or [''])[0]}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise ModelError(f"--model {name}: {path.name} has no callable {attr!r} (it defines "
                         f"{', '.join(found[:8]) or 'none'})")
    return factory


def _builder(name: str, factory: Any):
    def build(c: int, k: int, s: int) -> nn.Module:
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            params = {}
        extra = {key: value for key, value in (("in_channels", c), ("img_size", s)) if key in params}
        try:
            model = factory(k, **extra)
        except Exception as exc:  # the user's factory may raise anything
            raise ModelError(f"--model {name}: {name.rpartition(':')[2]}({k}) raised {type(exc).__name__}: "
                             f"{(str(exc).splitlines() or [''])[0]}") from None
        if not isinstance(model, nn.Module):
            raise ModelError(f"--model {name}: {name.rpartition(':')[2]}({k}) returned {type(model).__name__}, "
                             "not a torch nn.Module")
        return model

    return build


def entry_for(name: str) -> ModelEntry:
    """The entry of a user's factory (not cached: the file may change between calls). A factory may carry an
    ``input_size`` attribute, its default --img-size (else 224)."""
    factory = _factory(name)  # imported once per entry: its builder calls this very object
    size = getattr(factory, "input_size", DEFAULT_SIZE)
    if not isinstance(size, int) or size < 1:
        raise ModelError(f"--model {name}: its input_size attribute must be a positive whole number, got {size!r}")
    return ModelEntry(name, f"your code: {name}", _builder(name, factory), size)


FALLBACKS.append((is_user_code, entry_for))
