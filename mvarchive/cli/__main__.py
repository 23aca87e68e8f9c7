"""``python -m mvarchive.cli``: the same as the ``mvarchive`` script."""

from .app import main

main()
