"""The ``policylang`` command line: one module per command, wired up in :mod:`.main`."""
