import sys

if sys.argv[1:2] == ["run"]:  # the daemon: from here on a SIGTERM is a clean stop (rtstream.support.early_signals)
    from rtstream.support import early_signals

    early_signals.hold()

from rtstream.cli.main import main

raise SystemExit(main())
