"""`make test`'s set-up script: where it cannot install, one line naming what to install."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "test-prerequisites.sh"
# What the script itself runs, besides the commands whose absence it reports.
TOOLS = ["sort", "id", "printf", "mariadb-dump", "mariadb-admin", "openssl", "redis-server",
         "redis-cli", "mariadbd", "apt-get"]


@pytest.mark.parametrize("missing", ["rclone", "openssl", "redis-server"])
def test_without_root_it_stops_at_once_naming_the_package(missing: str) -> None:
    # A directory an unprivileged user can reach (pytest's tmp_path is private to root).
    with tempfile.TemporaryDirectory() as place:
        Path(place).chmod(0o755)
        _run_without(missing, Path(place) / "bin")


def _run_without(missing: str, bin_dir: Path) -> None:
    bin_dir.mkdir()
    for tool in [*TOOLS, "rclone"]:
        found = shutil.which(tool) or (f"/usr/sbin/{tool}" if os.path.exists(f"/usr/sbin/{tool}") else None)
        if tool != missing and found:
            (bin_dir / tool).symlink_to(found)
    bin_dir.chmod(0o755)
    # As an unprivileged user (nobody), reading the script from stdin.
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         "env", f"PATH={bin_dir}", shutil.which("bash") or "/bin/bash", "-s"],
        input=SCRIPT.read_text(encoding="utf-8"), capture_output=True, text=True, timeout=30,
        check=False)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"install the Debian packages {missing} " in lines[0]
    assert f"apt-get install {missing})" in lines[0]
    assert result.stdout == ""
