import sys

from vitprobe.cli import main

sys.exit(main())
