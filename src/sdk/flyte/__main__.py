"""``python -m flyte`` is the ``flyte`` command."""

from .cli import main

main()
