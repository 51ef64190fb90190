"""``python -m stratus.serving.dns``: run the health-checked DNS responder (see :mod:`.cli`)."""

import sys

from stratus.serving.dns.cli import main

sys.exit(main())
