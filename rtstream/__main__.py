from rtstream.cli import main

raise SystemExit(main())
