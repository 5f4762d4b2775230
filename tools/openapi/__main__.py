"""``python -m tools.openapi``: rewrite src/openplatform/web/openapi.json."""

from tools.openapi.build import main

main()
