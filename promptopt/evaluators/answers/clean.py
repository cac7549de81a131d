"""Text cleaning shared by every answer kind: what the extractors see first.

Why: model output mixes Unicode minus signs, en/em dashes, LaTeX fractions and markdown emphasis
with the answer; unifying them once here lets every pattern in the other modules match plain
text. Pure string work on untrusted text, nothing is evaluated.
"""

from __future__ import annotations

import re
import unicodedata

_FRAC_RE = re.compile(r"\\[dt]?frac\{\s*(\d+)\s*\}\{\s*(\d+)\s*\}")
#: ``\text{B}``, ``\textbf{(B)}``, ``\mathrm{True}``: LaTeX text commands keep only their content.
_TEXT_CMD_RE = re.compile(r"\\(?:text(?:bf|rm|it|tt)?|mathrm|mathbf)\{([^{}]*)\}")


def _clean(text: str) -> str:
    """NFKC, unify minus/dash signs, unwrap LaTeX fractions and text commands and drop markdown
    emphasis, so patterns see plain text."""
    text = unicodedata.normalize("NFKC", text)
    text = _FRAC_RE.sub(r"\1/\2", text)
    text = _TEXT_CMD_RE.sub(r"\1", text)
    text = text.replace("\u2212", "-").replace("\u2013", "-").replace("\u2014", " - ")
    return text.replace("**", "").replace("__", "")


def _norm(text: str) -> str:
    text = _clean(text).lower()
    text = re.sub(r"\s+", " ", text).strip()
    return text.strip(" .\"'`*")
