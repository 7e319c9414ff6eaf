import sys

from vitprobe.launch import main

sys.exit(main())
