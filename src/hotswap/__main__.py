from hotswap.cli import main

raise SystemExit(main())
