"""The ``driftloop`` command line (design section 6) and the tools it runs.

- :mod:`~monitor.cli.main`: the parser and ``main`` (one line and exit 2 on user errors);
- :mod:`~monitor.cli.evaluate`: ``driftloop evaluate``;
- :mod:`~monitor.cli.demo`: ``driftloop demo``, the closed loop on one machine (a package);
- :mod:`~monitor.cli.examples`: the seeded "carloan" example dataset;
- :mod:`~monitor.cli.replay`: a data file onto Kafka as native events.

May import: every room of ``monitor`` (heavy ones lazily, so ``--help`` stays fast).
"""

from monitor.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
