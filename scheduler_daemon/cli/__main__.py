"""``python -m scheduler_daemon.cli``: what ``install-service`` writes when there is no
``scheduler-daemon`` script beside the interpreter."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
