"""The exit codes of the ``agentyard`` command."""

EXIT_FAILED = 1
EXIT_USAGE = 2
