"""Griffe extension for the API reference: Sphinx cross-reference roles become Markdown code.

Why: promptopt's docstrings name other objects the Sphinx way (:func:`~promptopt.x.y`,
:class:`Task`), while mkdocstrings renders docstrings as Markdown, where the role would show as
literal text (":func:~promptopt.x.y"). The role is dropped and the target kept as inline code; a
leading ``~`` keeps only the last dotted component, as Sphinx shows it. Docstrings in the source
stay as they are (they read well in ``help()`` and editors).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

#: ``:role:`target``` or ``:py:role:`target``` (any Sphinx Python-domain role)
ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|data|attr|exc|obj|const|ref):`(~?)([^`]+)`")


def strip_roles(text: str) -> str:
    """``text`` with each Sphinx role replaced by its target as inline code."""

    def code(m: re.Match[str]) -> str:
        target = m.group(2)
        return f"`{target.rsplit('.', 1)[-1] if m.group(1) else target}`"

    return ROLE.sub(code, text)


class SphinxRoles(griffe.Extension):
    """Rewrites every loaded object's docstring with :func:`strip_roles`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = strip_roles(obj.docstring.value)
