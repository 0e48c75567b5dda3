from runbook_lib.cli import main

raise SystemExit(main())
