from hotspots.cli import main

raise SystemExit(main())
