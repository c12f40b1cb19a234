"""What every benchmark script shares: its ``--out`` option, the machine it ran on, and the JSON report.

Benchmarks are run as ``python bench/NAME.py``, so this module is imported as ``common``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def add_out(parser: argparse.ArgumentParser, name: str) -> None:
    """``--out PATH``, by default ``bench/results/NAME.json``."""
    parser.add_argument("--out", type=Path, default=RESULTS / f"{name}.json", help="where the JSON report goes")


def machine() -> dict[str, Any]:
    """The machine and software a number was measured on (a benchmark means nothing without it)."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "arch": platform.machine(),
    }
    try:
        info["load_average_1min"] = os.getloadavg()[0]
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def write_report(path: Path | str, report: dict[str, Any]) -> Path:
    """Write ``report`` (with the machine added) as JSON and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**report, "machine": machine()}, indent=1, default=str) + "\n")
    print(f"wrote {path}")
    return path
