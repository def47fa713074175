"""``python -m engine.cli``: the same as the ``seamline`` command."""

from engine.cli.main import main

main()
