from mcpctl.cli import main

raise SystemExit(main())
