"""`python -m bybit_hybrid` runs the command line."""

import sys

from bybit_hybrid.service.cli import main

sys.exit(main())
