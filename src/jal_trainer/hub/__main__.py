"""``python -m jal_trainer.hub {card,push} ...``."""

import sys

from jal_trainer.hub import main

sys.exit(main())
