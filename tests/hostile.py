"""A corpus of hostile and awkward strings for every text field a partner file or config can carry.

Not a test module. Grow it with every new kind of payload; the tests that use it
put each string in every text field they know of. ``{marker}`` is replaced by
a path the test checks was never created (a payload that ran).
"""
from __future__ import annotations

HOSTILE = [
    "X{{ lipsum.__globals__.os.popen('touch {marker}-popen').read() }}",
    "{{ cycler.__init__.__globals__.os.makedirs('{marker}-makedirs') }}",
    "{% for i in range(3) %}loop{% endfor %}",
    "{{",
    "{#",
    '<img src=x onerror="alert(1)">',
    "${alert(2)}",
    "</script><script>alert(3)</script>",
    "`;alert(4);`",
    "<b onmouseover=alert(5)>bold</b>",
    "Unit 1\\2 and C:\\new\\x41",
    "quote \" and ' apostrophe",
    "line\u2028separator\u2029paragraph",
    "<!-- open comment",
    "javascript:alert(6)",
    "'); alert(7); ('",
    "Ñame 東京 \U0001F691 é",
    "=HYPERLINK(\"http://example.invalid\",\"x\")",
    "W" * 3000,
]


def payloads(marker: str) -> list[str]:
    """The corpus with ``{marker}`` filled in."""
    return [p.replace("{marker}", marker) for p in HOSTILE]
