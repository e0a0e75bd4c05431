"""``python -m policylang``: the same as the ``policylang`` command."""

from policylang.cli.main import run

if __name__ == "__main__":
    run()
