"""Placeholder until the backup commands land (owned by the deployment work)."""
from __future__ import annotations

import argparse


def register_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """No backup commands yet."""
