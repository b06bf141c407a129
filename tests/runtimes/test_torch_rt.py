"""TorchScript files run code: those edgecv did not write run only with the trust flag."""

from __future__ import annotations

import pytest
from conftest import assert_user_error, invoke, run_cli


def test_torchscript_from_elsewhere_runs_only_with_the_trust_flag(trained, tmp_path):
    """edgecv's own TorchScript export loads as before; the same model saved by anyone else (here: torch.jit.save
    of it, so only the bytes differ) is refused before torch reads it, unless --trust-torchscript is given."""
    import torch

    from edgecv.core.trust import UntrustedModelError
    from edgecv.exporters import export_torchscript, load_source
    from edgecv.runtimes import RuntimeOptions, load_model

    run = trained("lenet5", epochs=1)
    ours = tmp_path / "ours.pt"
    export_torchscript(load_source(run), ours)
    assert load_model(ours).format == "torchscript"  # written by edgecv for this user: trusted
    extra = {"edgecv_spec.json": ""}
    module = torch.jit.load(str(ours), _extra_files=extra)
    foreign = tmp_path / "foreign.pt"
    torch.jit.save(module, str(foreign), _extra_files=extra)
    with pytest.raises(UntrustedModelError, match="--trust-torchscript"):
        load_model(foreign)
    assert load_model(foreign, RuntimeOptions(trust_torchscript=True)).format == "torchscript"
    assert_user_error(invoke("eval", foreign, "--data", "digits"), "did not write", "--trust-torchscript")
    trusted = run_cli("eval", foreign, "--data", "digits", "--trust-torchscript", check=True)
    assert "accuracy" in trusted.stdout
    ours.write_bytes(foreign.read_bytes())  # swapped after export: the hash no longer matches
    with pytest.raises(UntrustedModelError):
        load_model(ours)
