"""The repository stands alone: a clone runs its tests, requirements install anywhere."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-dev.txt",
                                  "requirements.in", "requirements-dev.in"])
def test_requirements_name_no_local_index_or_path(name: str) -> None:
    text = (ROOT / name).read_text(encoding="utf-8")
    options = [line for line in text.splitlines()
               if re.match(r"\s*-(-index-url|-extra-index-url|-find-links|-trusted-host|f|i)\b",
                           line)]
    assert options == [], f"{name} carries this machine's pip options: {options}"
    assert "file://" not in text and "/opt/" not in text


def test_a_clone_in_an_empty_directory_runs_the_sample_based_tests(tmp_path: Path) -> None:
    # What a newcomer gets: the committed tree alone, no sibling folders around it.
    if not (ROOT / ".git").exists():
        pytest.fail("run from a git checkout: this test clones it")
    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_smoke.py", "tests/uploads/test_parsers_lean.py"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))  # type: ignore[union-attr]
    assert passed >= 4 and "skipped" not in summary and "error" not in summary, summary
