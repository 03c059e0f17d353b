import sys

from dediffusion.cli.main import main

sys.exit(main())
