"""``python -m orchestration.cli``: the ``agentyard`` command, as worker processes start it."""

import sys

from orchestration.cli import main

sys.exit(main())
