"""``python -m eventbridge`` is the ``eventbridge`` command."""

from eventbridge.cli import main

main()
