"""``python -m ns_letsencrypt``: the same entry point as the ``ns-letsencrypt`` script."""

import sys

from .cli import main

sys.exit(main())
