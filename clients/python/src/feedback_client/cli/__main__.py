"""``python -m feedback_client.cli`` is the ``feedback`` command."""

import sys

from feedback_client.cli.main import main

sys.exit(main())
