"""The rich Console every CLI view prints with.

On a terminal rich fits tables to its width. Piped (to grep, a file, a
script), rich would take 80 columns (or an inherited `COLUMNS`) and cut ids
with an ellipsis, so a piped console is as wide as a line needs.
"""

import sys
from typing import Any

from rich.console import Console

#: Wide enough for any row; rich sizes a table to its content, not to this.
PIPED_WIDTH = 10_000


def console(**options: Any) -> Console:
    """A Console for stdout that never cuts a line when stdout is not a terminal."""
    if "width" not in options and not sys.stdout.isatty():
        options["width"] = PIPED_WIDTH
    return Console(**options)
