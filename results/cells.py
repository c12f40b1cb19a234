"""Per-cell success of an evaluation: mean@k and greedy by every combination of two task
parameters, each with its standard error over the cell's distinct tasks, and the share
of cells a teacher could not learn from (below 5% or above 90% mean@k).

    python results/cells.py SAMPLES.jsonl --rows n_operands --cols wording [--out OUT]

SAMPLES.jsonl is what ``agentgym eval`` writes beside its report (one line per sample,
``pass`` "sampled" or "greedy"). Writes OUT.json (the table) and OUT.png (a heat map);
OUT defaults to the samples path without ``.samples.jsonl``, plus ``_cells``.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path


def cell_table(path: Path, rows: str, cols: str) -> dict:
    sampled: dict[tuple, dict[tuple, list[bool]]] = defaultdict(lambda: defaultdict(list))
    greedy: dict[tuple, dict[tuple, list[bool]]] = defaultdict(lambda: defaultdict(list))
    with open(path) as f:
        for line in f:
            s = json.loads(line)
            params = s["task"]["params"]
            cell = (params[rows], params[cols])
            task = (json.dumps(params, sort_keys=True), s["task"]["seed"])
            (greedy if s.get("pass") == "greedy" else sampled)[cell][task].append(bool(s["success"]))
    cells = []
    for cell in sorted(sampled, key=lambda c: (str(type(c[0])), c[0], str(c[1]))):
        per_task = [sum(v) / len(v) for v in sampled[cell].values()]
        n = len(per_task)
        mean = sum(per_task) / n
        se = math.sqrt(sum((x - mean) ** 2 for x in per_task) / (n - 1) / n) if n > 1 else float("nan")
        g = [x for v in greedy[cell].values() for x in v]
        cells.append(
            {
                rows: cell[0],
                cols: cell[1],
                "tasks": n,
                "mean_at_k": mean,
                "se": se,
                "greedy": sum(g) / len(g) if g else None,
            }
        )
    low = sum(c["mean_at_k"] < 0.05 for c in cells)
    high = sum(c["mean_at_k"] > 0.90 for c in cells)
    return {
        "samples": str(path),
        "rows": rows,
        "cols": cols,
        "cells": cells,
        "n_cells": len(cells),
        "below_5pct": low,
        "above_90pct": high,
        "share_uninformative": (low + high) / len(cells),
        "mean_over_cells": sum(c["mean_at_k"] for c in cells) / len(cells),
    }


def heat_map(table: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = table["rows"], table["cols"]
    rv = sorted({c[rows] for c in table["cells"]})
    cv = sorted({c[cols] for c in table["cells"]}, key=str)
    grid = [[math.nan] * len(cv) for _ in rv]
    for c in table["cells"]:
        grid[rv.index(c[rows])][cv.index(c[cols])] = c["mean_at_k"]
    fig, ax = plt.subplots(figsize=(1.4 * len(cv) + 2, 0.5 * len(rv) + 1.6))
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for c in table["cells"]:
        i, j = rv.index(c[rows]), cv.index(c[cols])
        ax.text(j, i, f"{c['mean_at_k']:.0%}\n±{c['se']:.0%} (n={c['tasks']})", ha="center", va="center",
                fontsize=7, color="white" if c["mean_at_k"] < 0.6 else "black")  # fmt: skip
    ax.set_xticks(range(len(cv)), [str(v) for v in cv])
    ax.set_yticks(range(len(rv)), [str(v) for v in rv])
    ax.set_xlabel(cols)
    ax.set_ylabel(rows)
    ax.set_title(
        f"mean@k per cell: {table['below_5pct']} of {table['n_cells']} cells below 5%, "
        f"{table['above_90pct']} above 90%",
        fontsize=9,
    )
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("samples", type=Path)
    p.add_argument("--rows", required=True)
    p.add_argument("--cols", required=True)
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    out = a.out or a.samples.with_name(a.samples.name.replace(".samples.jsonl", "") + "_cells")
    table = cell_table(a.samples, a.rows, a.cols)
    out.with_suffix(".json").write_text(json.dumps(table, indent=1) + "\n")
    heat_map(table, out.with_suffix(".png"))
    print(f"{a.rows:>10} {a.cols:>10} {'tasks':>6} {'mean@k':>14} {'greedy':>7}")
    for c in table["cells"]:
        g = "" if c["greedy"] is None else f"{c['greedy']:.1%}"
        print(f"{c[a.rows]!s:>10} {c[a.cols]!s:>10} {c['tasks']:6d} {c['mean_at_k']:7.1%} ± {c['se']:4.1%} {g:>7}")
    print(
        f"{table['n_cells']} cells: {table['below_5pct']} below 5%, {table['above_90pct']} above 90% "
        f"({table['share_uninformative']:.0%} where a group rarely has signal); "
        f"mean over cells {table['mean_over_cells']:.1%}"
    )
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
