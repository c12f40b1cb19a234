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
    """Appends records to a run folder's JSONL files, and to TensorBoard, wandb or trackio while open."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.run_dir = Path(run_dir)
        #: False on every rank but 0 under torchrun: one process writes the run folder.
        self.enabled = enabled
        self.tb: Any = None
        #: Open trackers of ``train.report_to`` other than TensorBoard: name -> module.
        self.trackers: dict[str, Any] = {}

    def open_tensorboard(self, step: int, config: dict[str, Any] | None = None) -> None:
        """Start TensorBoard; steps after ``step`` written by an earlier process are purged.

        A new run also records ``config``: as text, and its scalars as TensorBoard hparams."""
        if not self.enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard missing: JSONL and plots still work
            return
        self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=step + 1 if step else None)
        if config is not None and not step:
            import yaml
            from torch.utils.tensorboard.summary import hparams

            self.tb.add_text("config", "```\n" + yaml.safe_dump(config, sort_keys=False) + "```", 0)
            flat = {k: v for k, v in _flatten(config).items() if isinstance(v, (bool, int, float, str))}
            for summary in hparams(flat, {"eval/success": float("nan")}):
                self.tb.file_writer.add_summary(summary)

    def open_trackers(self, names: list[str], config: dict[str, Any], project: str | None) -> None:
        """Start wandb / trackio for this run (resumed under the same id after a restart)."""
        if not self.enabled:
            return
        name = self.run_dir.name
        project = project or (self.run_dir.resolve().parent.name or "agentgym")
        id_file = self.run_dir / "tracker_id"
        run_id = id_file.read_text().strip() if id_file.exists() else f"{name}-{os.urandom(4).hex()}"
        id_file.write_text(run_id + "\n")
        for tracker in names:
            if tracker == "wandb":
                import wandb

                wandb.init(project=project, name=name, id=run_id, resume="allow", dir=str(self.run_dir), config=config)
                self.trackers["wandb"] = wandb
            elif tracker == "trackio":
                import trackio

                trackio.init(project=project, name=name, config=config, resume="allow")
                self.trackers["trackio"] = trackio

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        for module in self.trackers.values():
            module.finish()
        self.trackers.clear()

    def write(self, record: dict[str, Any], file: str = "metrics.jsonl") -> None:
        if not self.enabled:
            return
        with open(self.run_dir / file, "a") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if file != "metrics.jsonl":
            return
        scalars = {
            k: v
            for k, v in record.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step" and math.isfinite(v)
        }
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, record["step"])
        for module in self.trackers.values():
            module.log(scalars, step=int(record["step"]))

    def trim(self, step: int | None) -> None:
        """Keep only lines of steps <= ``step`` (None: no checkpoint, so keep nothing)."""
        if not self.enabled:
            return
        for name in FILES:
            path = self.run_dir / name
            if path.exists():
                kept: list[str] = []
                if step is not None:
                    kept = [ln for ln in path.read_text().splitlines() if ln.strip() and _line_step(ln) <= step]
                atomic_write(path, "".join(ln + "\n" for ln in kept))


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


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
