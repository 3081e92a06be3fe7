"""Run the hyperparameter search (the Dagster job ``hyperparameter_search``) from the command line.

    python -m pipelines.tune --trials 10                      # the default space, params.yaml's train length
    python -m pipelines.tune --trials 20 --max-steps 50 --space space.yaml

``--space`` is a YAML file (or inline YAML) mapping train settings to ranges or choices, as in the
job's run config (assets/tune/space.py). The run lands in the persistent Dagster instance (DAGSTER_HOME),
so it shows in the UI with its trials table and plot. The best settings go to tuning/best_params.yaml;
params.yaml is never changed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from pipelines.instance import HOST_TAG, command_line_run
from pipelines.materialize import report_failure
from resources.processes import hostname
from resources.project import PROJECT_ROOT


def _space(text: str) -> dict[str, Any]:
    """The search space from a YAML file, or from YAML given inline."""
    path = Path(text)
    source = path.read_text(encoding="utf-8") if path.is_file() else text
    try:
        space = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise SystemExit(f"error: --space {text!r} is neither a YAML file nor valid YAML: {exc}") from None
    if not isinstance(space, dict):
        raise SystemExit(
            f"error: --space {text!r} must be a YAML mapping (a file, or e.g. "
            "'{learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}}'); no such file either."
        )
    return space


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=None, help="trials to run (default 20)")
    parser.add_argument(
        "--max-steps", type=int, default=None, help="optimizer steps per trial (default: as params.yaml)"
    )
    parser.add_argument("--space", type=_space, default=None, help="search space: a YAML file or inline YAML")
    parser.add_argument("--sampler-seed", type=int, default=None, help="seed of the TPE sampler (default 42)")
    args = parser.parse_args(argv)
    config = {
        name: value
        for name, value in (
            ("trials", args.trials),
            ("max_steps", args.max_steps),
            ("search_space", args.space),
            ("sampler_seed", args.sampler_seed),
        )
        if value is not None
    }

    opened = command_line_run()
    if opened is None:
        return 2
    instance, defs = opened
    from assets.tune.job import JOB_NAME, OP_NAME, TUNING_DIR

    run_config = {
        "ops": {OP_NAME: {"config": config}},
        "loggers": {"console": {"config": {"log_level": "INFO"}}},
    }
    result = defs.resolve_job_def(JOB_NAME).execute_in_process(
        instance=instance, run_config=run_config, tags={HOST_TAG: hostname()}, raise_on_error=False
    )
    if result.success:
        best = PROJECT_ROOT / TUNING_DIR / "best_params.yaml"
        print(
            f"run {result.run_id} succeeded; best settings in {best} "
            f"(params.yaml is unchanged: adopt them by hand); DAGSTER_HOME={os.environ['DAGSTER_HOME']}"
        )
        return 0
    report_failure(result)
    return 1


if __name__ == "__main__":
    sys.exit(main())
