"""docs/python.md's examples marked runnable, run in order in one Python
session in an empty directory: the documentation works as written."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

DOCS = Path(os.environ.get("MODELREG_DOCS", Path(__file__).resolve().parents[2] / "docs"))
BLOCK = re.compile(r"<!-- runnable -->\n```python\n(.*?)```", re.S)


def runnable_blocks(path: Path):
    return BLOCK.findall(path.read_text())


def test_python_md_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blocks = runnable_blocks(DOCS / "python.md")
    assert len(blocks) >= 8, "docs/python.md lost its runnable examples"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODELREG_ACTOR", "quant")
    monkeypatch.delenv("STRICT_VERSION_MODE", raising=False)
    namespace: dict = {"__name__": "__docs__"}
    outputs = []
    for i, block in enumerate(blocks, 1):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                exec(compile(block, f"docs/python.md block {i}", "exec"), namespace)
            except Exception as e:  # name the block
                raise AssertionError(f"docs/python.md runnable block {i} failed: {e!r}\n"
                                     f"{block}") from e
        outputs.append(out.getvalue())
    text = "\n".join(outputs)
    # What the comments in the examples say they print.
    assert "staged" in outputs[0]
    assert "promoted risk_model v1.0.0" in outputs[1]
    assert "failed: ic" in outputs[1] and "failed: sharpe" in outputs[1]
    assert outputs[2].strip() == "failed"
    assert outputs[3].startswith("False drift ['crsp: model trained on v1.2.3")
    assert outputs[4].split() == ["v1.0.0", "tree", "0", "v4.0.0"]
    assert "v4.0.0 -> v1.0.0" in outputs[5]
    assert outputs[6].startswith("v4.0.0 promoted")
    assert outputs[7].strip() == "False"
    assert "Traceback" not in text
