"""What a control character is, once for every input the platform reads (SPEC §9).

Unicode's control characters (category Cc): the C0 controls U+0000–U+001F, DEL U+007F and the C1
controls U+0080–U+009F (U+0085 NEXT LINE among them); and the line and paragraph separators U+2028
and U+2029, which end a line for JavaScript and for many log and text readers as "\\n" does. Any of
them in a parameter, a name, a path segment or a filter is refused with 40001. Format characters
(bidirectional marks, zero-width joiners) are not control characters: names in several scripts
need them.
"""

from __future__ import annotations

import re

CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def has_control_chars(text: str) -> bool:
    """Whether ``text`` holds a control character as defined above."""
    return CONTROL_CHARS.search(text) is not None
