"""``python -m daemon``: the same entry point as the ``dockyard`` command."""

from daemon.cli import main

raise SystemExit(main())
