"""``python -m zetafailover`` runs the command line."""

import sys

from zetafailover.cli import main

sys.exit(main())
