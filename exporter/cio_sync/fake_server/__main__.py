"""``python -m cio_sync.fake_server``: run the fake Track API until SIGTERM or SIGINT."""

from .cli import main

raise SystemExit(main())
