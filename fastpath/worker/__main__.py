import sys

from fastpath.worker.main import main

sys.exit(main())
