import sys

if sys.argv[1:2] == ["run"]:  # the daemon: from here on a SIGTERM is a clean stop (rtstream.early_signals)
    from rtstream import early_signals

    early_signals.hold()

from rtstream.cli import main  # noqa: E402 - after the signals are held

raise SystemExit(main())
