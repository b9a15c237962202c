import sys

from fastpath.cli import main

sys.exit(main())
