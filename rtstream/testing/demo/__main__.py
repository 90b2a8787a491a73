import sys

from rtstream.testing.demo.run import main

sys.exit(main())
