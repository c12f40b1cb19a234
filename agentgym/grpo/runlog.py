"""The run log: ``metrics.jsonl`` and ``teacher.jsonl`` (one JSON line per record) and TensorBoard.

Lines are flushed and fsynced as they are written, so a killed run loses at most the
line being written. On resume :meth:`RunLog.trim` drops what the killed process logged
after its last checkpoint, so the resumed log has no gap and no duplicate step.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

FILES = ("metrics.jsonl", "teacher.jsonl")


class RunLog:
    """Appends records to a run folder's JSONL files (and TensorBoard while open)."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.tb: Any = None

    def open_tensorboard(self, step: int) -> None:
        """Start TensorBoard; steps after ``step`` written by an earlier process are purged."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard missing: JSONL and plots still work
            return
        self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=step + 1 if step else None)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None

    def write(self, record: dict[str, Any], file: str = "metrics.jsonl") -> None:
        with open(self.run_dir / file, "a") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if self.tb is not None and file == "metrics.jsonl":
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step" and math.isfinite(v):
                    self.tb.add_scalar(k, v, record["step"])

    def trim(self, step: int | None) -> None:
        """Keep only lines of steps <= ``step`` (None: no checkpoint, so keep nothing)."""
        for name in FILES:
            path = self.run_dir / name
            if path.exists():
                lines = path.read_text().splitlines() if step is not None else []
                kept = [ln for ln in lines if ln.strip() and _line_step(ln) <= step]
                atomic_write(path, "".join(ln + "\n" for ln in kept))


def _line_step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return 1 << 60  # a torn last line: drop it


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
