"""torchvision data sets on disk: archives with members that leave the folder are refused."""

from __future__ import annotations

import pytest
from conftest import assert_user_error, invoke

from edgecv.core.errors import ModelError


@pytest.mark.parametrize("inner", ["archive/data.pkl", "archive/code/__torch__.py"])
def test_archives_with_dotdot_members_are_refused_and_nothing_is_extracted(tmp_path, inner):
    """.pt files are zip archives read in place: a member named ../../x is never written anywhere."""
    import zipfile

    from edgecv.runtimes import load_model

    work = tmp_path / "deep" / "er"
    work.mkdir(parents=True)
    path = work / "model.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(inner, b"\x80\x02}q\x00.")
        archive.writestr("../../escaped.txt", b"pwned")
    with pytest.raises(ModelError):
        load_model(path)
    assert_user_error(invoke("eval", path, "--data", "digits"), str(path))
    assert not any(p.name == "escaped.txt" for p in tmp_path.rglob("*")) and not (work.parent.parent /
                                                                                    "escaped.txt").exists()
