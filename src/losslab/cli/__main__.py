from losslab.cli import main

raise SystemExit(main())
