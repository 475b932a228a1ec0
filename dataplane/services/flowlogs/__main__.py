"""The lab's flow log collector: `python -m dataplane.services.flowlogs LAB`
(collector.py says what it reads and writes)."""
import sys

from .collector import main

sys.exit(main())
