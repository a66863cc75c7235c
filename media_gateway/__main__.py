from media_gateway.cli import main

raise SystemExit(main())
