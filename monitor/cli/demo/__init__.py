"""``driftloop demo``: the whole feedback loop on one machine, with real processes.

The demo starts a Tansu broker, ``mlflow server`` and ``driftloop serve`` on free
loopback ports in a temporary folder, trains and registers a first model, then
serves it to a seeded stream of loan applicants whose world drifts part way.
driftloop detects the drift, launches the retrain command, judges the new version
on live traffic against the old one and promotes it (or rolls it back); the demo
shows it live and ends with the timeline of driftloop's decisions. docs/demo.md
tells the story for people.

Modules, in the order a run uses them:

- :mod:`~monitor.cli.demo.options`: the command line and the pace (default, ``--short``);
- :mod:`~monitor.cli.demo.world`: the seeded applicants and the drift;
- :mod:`~monitor.cli.demo.training`: the model recipe, its baseline, MLflow logging;
- :mod:`~monitor.cli.demo.train`: the retrain command driftloop launches;
- :mod:`~monitor.cli.demo.processes` / :mod:`~monitor.cli.demo.stack`: child
  processes stopped by PID; the stack up and down; the state file;
- :mod:`~monitor.cli.demo.config`: the service's ``driftloop.yaml``;
- :mod:`~monitor.cli.demo.events` / :mod:`~monitor.cli.demo.traffic` /
  :mod:`~monitor.cli.demo.labeled`: the model server and the label feed;
- :mod:`~monitor.cli.demo.probe` / :mod:`~monitor.cli.demo.story` /
  :mod:`~monitor.cli.demo.view`: reading the service, the story's steps, what people see;
- :mod:`~monitor.cli.demo.run`: the run with its clean-up;
- :mod:`~monitor.cli.demo.batch`: ``--batch``, the detectors over a generated file.

Only the options are imported here: the retrain command and ``--help`` stay fast.
"""

from __future__ import annotations

from pathlib import Path

from monitor.cli.demo.options import FORMATS, SCENARIOS, DemoOptions

__all__ = ["FORMATS", "SCENARIOS", "DemoOptions", "run_batch_demo", "run_demo"]


def run_demo(options: DemoOptions) -> int:
    """The live demo; returns the exit code."""
    from monitor.cli.demo.run import run

    return run(options)


def run_batch_demo(out: Path, seed: int = 7, report: bool = True) -> int:
    """The batch demo (``--batch``); returns the exit code."""
    from monitor.cli.demo.batch import run_batch_demo as batch

    return batch(out, seed=seed, report=report)
