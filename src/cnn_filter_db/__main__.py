"""``python -m cnn_filter_db``: the same program as the ``cnn-filter-db`` command."""
import sys

from .cli import main

sys.exit(main())
