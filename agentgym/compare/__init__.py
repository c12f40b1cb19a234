"""Methods side by side: arms x seeds of ``agentgym train``, compared over seeds (``agentgym compare``).

A comparison is one config, a few arms (each a name and its config overrides) and a
list of seeds; each (arm, seed) pair is one training run in its own subprocess and run
folder. :mod:`~agentgym.compare.runs` plans, trains (or resumes) and reads the runs;
:mod:`~agentgym.compare.report` turns them into per-arm means and standard errors over
seeds, differences to a baseline arm with a 95% interval and a test, a JSON report, a
plot and a console table. The statistics are in :mod:`agentgym.stats`.
"""

from agentgym.compare.report import build_report, plot_report, report_table, summarize, write_report
from agentgym.compare.runs import (
    RESULTS_DIR,
    Arm,
    CompareError,
    CompareInterrupted,
    Plan,
    RunResult,
    check_plan,
    default_out,
    load_arms_file,
    parse_arm,
    parse_seeds,
    run_comparison,
)

__all__ = [
    "RESULTS_DIR",
    "Arm",
    "CompareError",
    "CompareInterrupted",
    "Plan",
    "RunResult",
    "build_report",
    "check_plan",
    "default_out",
    "load_arms_file",
    "parse_arm",
    "parse_seeds",
    "plot_report",
    "report_table",
    "run_comparison",
    "summarize",
    "write_report",
]
