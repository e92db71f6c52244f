"""Operation URLs are never followed as given: only their path and query are kept, after
strict checks, and the request goes to ARM_ENDPOINT.

An operation URL comes back from a table row, and anyone who can write the operations
table could put any URL there. ``urlsplit`` and the HTTP stack (urllib3) disagree about
URLs with ``\\`` or ``@`` in the authority (FACTS.md): ``https://a.example\\@b.example/x``
is host ``b.example`` to one and ``a.example`` to the other, so no decision about where
the bearer token goes may rest on parsing such a string. Instead:

1. the raw string is checked character by character (ASCII, printable, no whitespace,
   no ``\\``, no ``#``, no ``@``, percent escapes well formed);
2. it must start with ``https://`` followed by exactly ARM_ENDPOINT's authority
   (case-insensitive host; ``:443`` may be spelled or not); anything else between
   ``//`` and the path (user info, another port, an IPv6 literal, a second host) fails;
3. the path must be under ``/subscriptions/``, with no empty, ``.`` or ``..`` segment
   and no escaped ``/``, ``\\``, ``.``, ``@``, ``%`` or control character (so no
   layer below can turn it into another path);
4. the URL that is sent is ARM_ENDPOINT + that path + that query: its host comes from
   the settings, never from the row.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MAX_URL_LENGTH = 4096

_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Escapes that could change the path's meaning once some layer decodes them:
# / \ . @ % ? # and every control character or space.
_DANGEROUS_PATH_ESCAPE = re.compile(r"%(2[fF]|5[cC]|2[eE]|40|25|3[fF]|23|[01][0-9A-Fa-f]|7[fF]|20)")
_CONTROL_ESCAPE = re.compile(r"%([01][0-9A-Fa-f]|7[fF])")
# RFC 3986 pchar without "@" (and "%", checked above): unreserved, sub-delims and ":".
_PATH = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:/%]*")
_QUERY = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:/?%]*")


class OperationUrlRejected(ValueError):
    """The recorded URL failed a check; the message says which, never echoing the URL."""


def _authority(endpoint: str) -> set[str]:
    """The spellings of ARM_ENDPOINT's authority that a recorded URL may carry."""
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 endpoint (not used by Resource Manager; kept exact)
        host = f"[{host}]"
    port = parts.port or 443
    spellings = {f"{host}:{port}"}
    if port == 443:
        spellings.add(host)
    return spellings


def arm_poll_url(endpoint: str, recorded: str) -> str:
    """The URL to poll for the operation recorded as ``recorded``: on ``endpoint``'s
    scheme and host, with the recorded path and query. OperationUrlRejected otherwise."""
    if not isinstance(recorded, str) or not recorded:
        raise OperationUrlRejected("the operation URL is empty")
    if len(recorded) > MAX_URL_LENGTH:
        raise OperationUrlRejected(f"the operation URL is longer than {MAX_URL_LENGTH} characters")
    if not recorded.isascii() or not recorded.isprintable() or any(c.isspace() for c in recorded):
        raise OperationUrlRejected(
            "the operation URL has whitespace, control or non-ASCII characters"
        )
    if "\\" in recorded or "%5c" in recorded.lower():
        raise OperationUrlRejected("the operation URL has a backslash")
    if "#" in recorded:
        raise OperationUrlRejected("the operation URL has a fragment")
    if "@" in recorded:
        raise OperationUrlRejected("the operation URL has an '@' (user info)")
    if _PERCENT.search(recorded):
        raise OperationUrlRejected("the operation URL has a malformed percent escape")
    scheme, sep, rest = recorded.partition("://")
    if not sep or scheme.lower() != "https":
        raise OperationUrlRejected("the operation URL is not https")
    authority, slash, tail = rest.partition("/")
    if authority.lower() not in _authority(endpoint):
        raise OperationUrlRejected("the operation URL is not on ARM_ENDPOINT's host and port")
    path, _, query = (slash + tail).partition("?")
    if not path.startswith("/subscriptions/"):
        raise OperationUrlRejected("the operation URL's path is not under /subscriptions/")
    if not _PATH.fullmatch(path) or _DANGEROUS_PATH_ESCAPE.search(path):
        raise OperationUrlRejected("the operation URL's path has characters or escapes not allowed")
    segments = path.split("/")[1:]
    if any(segment in ("", ".", "..") for segment in segments[:-1]) or segments[-1] in (".", ".."):
        raise OperationUrlRejected("the operation URL's path has an empty, '.' or '..' segment")
    if not _QUERY.fullmatch(query) or _CONTROL_ESCAPE.search(query):
        raise OperationUrlRejected("the operation URL's query has characters not allowed")
    base = endpoint.rstrip("/")
    return f"{base}{path}?{query}" if query else f"{base}{path}"
