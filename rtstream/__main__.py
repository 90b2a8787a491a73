from rtstream.cli.main import main

raise SystemExit(main())
