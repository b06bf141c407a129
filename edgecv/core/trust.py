"""Which TorchScript files may run. A TorchScript file carries code that torch executes on load and on every
call, so edgecv runs one only if it wrote that exact file for this user (its SHA-256 is in the user's trust
list, added by ``edgecv export``) or the user says they trust it (``--trust-torchscript``,
``RuntimeOptions(trust_torchscript=True)``). ONNX files and edgecv checkpoints need no trust: they hold no code
(checkpoints are read with ``weights_only=True``).

The list is a text file of ``sha256  path`` lines at ``$EDGECV_TRUST_FILE``, else
``$XDG_DATA_HOME/edgecv/trusted-torchscript.txt`` (``~/.local/share/...``). Lines are appended in one write,
so concurrent exports do not lose each other's entries.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from edgecv.core.errors import ModelError
from edgecv.core.fsutil import sha256


class UntrustedModelError(ModelError):
    """A file that would run code, from a source edgecv cannot vouch for."""


def trust_file() -> Path:
    """Where this user's list of trusted TorchScript hashes lives."""
    if os.environ.get("EDGECV_TRUST_FILE"):
        return Path(os.environ["EDGECV_TRUST_FILE"])
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data / "edgecv" / "trusted-torchscript.txt"


def remember(path: Path) -> None:
    """Add the file's hash to the trust list (edgecv wrote it). Where the list cannot be written (a read-only
    home), the file is still written; loading it then needs --trust-torchscript, which the refusal says."""
    target = trust_file()
    line = f"{sha256(path)}  {Path(path).resolve()}\n".encode()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError:
        pass


def _known() -> set[str]:
    try:
        lines = trust_file().read_text(encoding="utf-8").splitlines()
    except OSError:
        return set()
    return {line.split()[0] for line in lines if line.strip()}


def vetted_bytes(path: Path, trust: bool) -> bytes:
    """The file's bytes, once they are known to be trusted: the bytes hashed are the bytes loaded, so the file
    cannot be swapped between the check and the load. Refuses a TorchScript file edgecv did not write unless
    the user trusts it explicitly."""
    data = Path(path).read_bytes()
    if trust or hashlib.sha256(data).hexdigest() in _known():
        return data
    raise UntrustedModelError(
        f"{path} is a TorchScript file that edgecv did not write for this user; TorchScript runs the code inside "
        "it, so it is refused. Pass --trust-torchscript if you trust where it came from (or run its ONNX export)")
