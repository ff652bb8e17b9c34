"""Characters that change what a reviewer sees without being seen: made visible before repository text is shown.

Bidirectional controls (U+202A-U+202E, U+2066-U+2069, ...) reorder a line on screen, so `if admin:` can display
as something else ("Trojan Source"); zero-width and tag characters hide text; terminal control bytes (ESC, a
bare CR) can erase or overwrite a diff line. A change set is reviewed as shown, so each such character is
replaced by a visible code-point marker such as `<U+202E>`. Tabs and line ends stay as they are.
"""

from __future__ import annotations

import re
import unicodedata

# Unicode categories that are never visible: controls (Cc), format characters (Cf: bidi, zero-width, tags, BOM),
# line and paragraph separators (Zl, Zp), which some terminals treat as line breaks.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
_KEPT = frozenset({"\t", "\n"})
# A CR right before a line end is an ordinary CRLF ending; anywhere else it returns the cursor over the line.
_STRAY_CR = re.compile(r"\r(?!\n|\Z)")


def is_hidden(char: str) -> bool:
    """True for a character that would not be shown as itself (apart from tab, LF and a CRLF's CR)."""
    return char not in _KEPT and char != "\r" and unicodedata.category(char) in _HIDDEN_CATEGORIES


def reveal_invisible(text: str) -> str:
    """`text` with every invisible or terminal-controlling character replaced by its code-point marker (`<U+202E>`)."""
    if text.isprintable():
        return text  # the common case, checked in C: nothing to reveal
    text = _STRAY_CR.sub("<U+000D>", text)
    return "".join(f"<U+{ord(char):04X}>" if is_hidden(char) else char for char in text)
