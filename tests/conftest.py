"""Fixtures shared by the test modules."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass
class CliOutcome:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli_run(capsys):
    """Run ``losslab ARGS`` in this process (exit code, stdout, stderr); ``compare`` runs
    without progress bars."""
    from losslab.cli import main

    def run(*args: str) -> CliOutcome:
        capsys.readouterr()
        code = main([*args, "--no-progress"] if args and args[0] == "compare" else list(args))
        captured = capsys.readouterr()
        return CliOutcome(code, captured.out, captured.err)

    return run
