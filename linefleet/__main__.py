import sys

from linefleet.cli import main

sys.exit(main())
