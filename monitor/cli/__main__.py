"""``python -m monitor.cli``: the ``driftloop`` command without its console script (the
demo starts ``serve`` this way, with the interpreter it runs on)."""

import sys

from monitor.cli.main import main

sys.exit(main())
