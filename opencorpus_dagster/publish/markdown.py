"""Text from the catalog or upstream as literal Markdown: the card, the Dagster UI's tables.

A description, a licence string, a URL or a rule name is data; printed into Markdown unescaped it
could end a table row, open a heading, a link or an HTML block (`</details><script>`).
"""

from __future__ import annotations

import re

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|!&])")
_AUTOLINK = re.compile(r"^https?://[^\s<>\x00-\x1f\x7f]+$")


def markdown_text(value: str | None) -> str:
    """`value` as literal Markdown inline text: one line, every special character escaped.

    For anything the card prints that came from the catalog or upstream (descriptions, licence
    expressions, language labels, the title). Whitespace runs, newlines included, become one
    space, so a value cannot end its table row or start a heading, list or HTML block; `<` is
    escaped, so no HTML tag survives; `[`, `]` and `!` are escaped, so no link or image forms.
    None gives "".
    """
    if not value:
        return ""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(value.split()))


def markdown_code(value: str | None) -> str:
    """`value` as a one-line Markdown code span (rule and reason names), whatever it contains.

    Backslashes are literal in a code span, so nothing is escaped there except `|`, which GFM
    tables split cells on even inside code (`\\|` is their escape); the fence is one backtick
    longer than the longest backtick run in the value (CommonMark), padded when the value
    starts or ends with a backtick.
    """
    text = " ".join((value or "").split()).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def markdown_link(url: str) -> str:
    """An autolink `<url>` for a plain http(s) URL; anything else is printed as escaped text."""
    return f"<{url}>" if _AUTOLINK.match(url) else markdown_text(url)
