"""``python -m feedback_service`` is the ``feedback`` command (the client's, with the server's commands)."""

import sys

from feedback_client.cli import main

sys.exit(main())
