import sys

from spinalnet.cli import main

sys.exit(main())
