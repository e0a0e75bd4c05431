"""``python -m policylang.testing PATH [...]``: the same as ``policylang test PATH [...]``."""

import sys

from policylang.testing.runner import main

if __name__ == "__main__":
    sys.exit(main())
