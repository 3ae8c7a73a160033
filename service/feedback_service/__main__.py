"""``python -m feedback_service`` is the ``feedback`` command."""

import sys

from feedback_service.cli import main

sys.exit(main())
