"""Command policies: render NITRO calls as CLI strings and decide whether a user may run them.

The appliance converts each NITRO call into its CLI form (nitro-reference §8.2) and matches the
user's bound command policies against it, case-insensitively, in priority order; the first
matching policy decides (ALLOW/DENY) and no match means denied (403, errorcode 2138). Users
without any policy list are superusers. Login and logout are never checked.

The ``cli_*`` helpers here are the renderers the handler modules pass to ``@handler(cli=...)``.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

from tests.fakens.core import Call, NitroFault

Rule = tuple[str, str]  # ("ALLOW" | "DENY", regex)


def check(policies: Optional[list[Rule]], cli: str) -> None:
    """Raise the 403/2138 fault unless the policies allow ``cli`` (None = superuser)."""
    if policies is None:
        return
    for verdict, pattern in policies:
        if re.search(pattern, cli, re.IGNORECASE):
            if verdict.upper() == "ALLOW":
                return
            break
    raise NitroFault(403, 2138, f"Not authorized to execute this command [{cli}]")


def quote(value: Any) -> str:
    """Quote a CLI argument the way the CLI prints it (only when it needs quoting)."""
    text = str(value)
    if text == "" or re.search(r'[\s"\\]', text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def field(call: Call, key: str) -> Optional[str]:
    """A body field as text, or None when the body lacks it."""
    if isinstance(call.body, dict) and call.body.get(key) is not None:
        return str(call.body[key])
    return None


def options(call: Call, names: dict[str, str]) -> str:
    """Render ``-cliName value`` for each body field present (names: body key -> CLI option)."""
    parts = []
    for key, option in names.items():
        value = field(call, key)
        if value is not None:
            parts.append(f"-{option} {quote(value)}")
    return " ".join(parts)


def join(*parts: Optional[str]) -> str:
    """Join the non-empty parts of a CLI command with single spaces."""
    return " ".join(p for p in parts if p)


def name_of(call: Call, key: str = "name") -> Optional[str]:
    """The object name from the path, the args or the body (in that order)."""
    return call.name or call.args.get(key) or field(call, key)


def show(words: str) -> Callable[[Call], str]:
    """Renderer for ``show <words> [<name>]``."""
    return lambda call: join("show", words, quote(call.name) if call.name else None)


def fixed(command: str) -> Callable[[Call], str]:
    """Renderer for a command without arguments, e.g. ``save ns config``."""
    return lambda call: command
