import sys

from kinoit.cli import main

sys.exit(main())
