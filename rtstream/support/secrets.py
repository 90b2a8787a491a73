"""The one notion of a secret, and the one way to keep it from leaving the process.

A secret is: every `SecretStr` value in the config (tokens, passwords, DSNs), the password of every
URL or DSN anywhere in the config, the value of every header or query parameter whose name says it
is a credential (`X-Api-Key`, `?access_token=`), and the admin, ingest and alert tokens (all
`SecretStr`). Every surface that shows text to the outside (logs, dead letters, the run history,
the admin server's answers, `rtstream validate`, config errors, alert payloads) passes it through
`redact`, which replaces:

- every known secret value (3 characters or more), plain and percent-encoded, with `***`;
- the password of any `scheme://user:password@host` in the text, known or not;
- the value of any query parameter named like a credential (`?token=`, `&api_key=`);
- what a config error echoes back (`(got ...)`) for a key that holds a secret.

Components need not redact anything themselves: the surfaces do it, so a component that prints its
raw URL into an error cannot leak it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

MASK = "***"
MIN_LENGTH = 3  # shorter values would mask half of every line; URL passwords are masked by pattern anyway

# names of config keys, headers and query parameters that hold a credential
_CREDENTIAL_NAME = re.compile(r"token|passw|pwd|secret|api[-_]?key|apikey|^authorization$|^x-auth|credential"
                              r"|signature|^sig$|cookie|^key$|[-_]key$|^dsn$", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s\"'<>]*):(?P<pw>[^@/?#\s\"'<>]*)@")
_QUERY_SECRET = re.compile(r"(?P<head>[?&;](?P<name>[^=&;#\s\"'<>]+)=)(?P<value>[^&;#\s\"'<>]+)")
_KEY = re.compile(r"([\w\[\].-]+): ")  # a dotted config key as config errors print it
_CONTAINERS = {"headers", "params"}  # maps whose keys name what their values are


def is_credential_name(name: str) -> bool:
    """Does a config key, header or query parameter of this name hold a credential?"""
    leaf = name.rsplit(".", 1)[-1]
    return bool(_CREDENTIAL_NAME.search(leaf))


def _mask_echoes(text: str) -> str:
    """`sinks.pg.dsn: Input should be a valid string (got 99999999)`: a config error echoing a secret."""
    lines = text.split("\n")
    for n, line in enumerate(lines):
        at = line.rfind("(got ")
        if at < 0:
            continue
        keys = _KEY.findall(line[:at])
        if keys and is_credential_name(keys[-1]):
            lines[n] = line[:at] + f"(got {MASK})"
    return "\n".join(lines)


def _variants(value: str) -> set[str]:
    return {value, quote(value, safe=""), unquote(value)} if value else set()


def secrets_of(settings: Any) -> list[str]:
    """Every secret value in a loaded config (see the module's docstring)."""
    from pydantic import BaseModel, SecretStr

    found: set[str] = set()

    def walk(value: Any, name: str = "") -> None:
        if isinstance(value, SecretStr):
            walk(value.get_secret_value(), name)
            found.update(_variants(value.get_secret_value()))
        elif isinstance(value, BaseModel):
            for field in type(value).model_fields:
                walk(getattr(value, field), field)
        elif isinstance(value, dict):
            for k, v in value.items():
                if name in _CONTAINERS and isinstance(v, (str, int)) and not isinstance(v, bool) \
                        and is_credential_name(str(k)):
                    found.update(_variants(str(v)))  # headers = { X-Api-Key = "..." }, params = { token = "..." }
                walk(v, str(k))
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, name)
        elif isinstance(value, str):
            found.update(_url_secrets(value))

    walk(settings.root)
    for comp in settings.components.values():
        walk(comp.config)
    return sorted(x for x in found if len(x) >= MIN_LENGTH)


def _url_secrets(value: str) -> set[str]:
    if "://" not in value and "=" not in value:
        return set()
    out: set[str] = set()
    try:
        parts = urlsplit(value)
        if parts.password:
            out |= _variants(parts.password)
        query = parts.query
    except ValueError:
        query = ""
    for k, v in parse_qsl(query, keep_blank_values=False):
        if is_credential_name(k):
            out |= _variants(v)
    # a libpq keyword DSN: "host=db user=app password=s3cret"
    for m in re.finditer(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", value):
        out |= _variants(m.group(1).strip("'"))
    return out


class Scrubber:
    """Replaces secrets in text (and in JSON-shaped documents) with `***`."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._lock = threading.Lock()
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            merged = set(self.secrets) | {s for s in secrets if isinstance(s, str) and len(s) >= MIN_LENGTH}
            self.secrets = sorted(merged, key=len, reverse=True)  # longest first: no partial masks

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if "://" in text and "@" in text:
            text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)
        if "=" in text:
            text = _QUERY_SECRET.sub(
                lambda m: m["head"] + MASK if is_credential_name(unquote(m["name"])) else m[0], text)
        if "(got " in text:
            text = _mask_echoes(text)
        return text

    def redact_doc(self, doc: Any) -> Any:
        """A copy of a JSON-shaped document with every string (keys too) redacted."""
        if isinstance(doc, str):
            return self.redact(doc)
        if isinstance(doc, dict):
            return {self.redact(k) if isinstance(k, str) else k: self.redact_doc(v) for k, v in doc.items()}
        if isinstance(doc, (list, tuple)):
            return [self.redact_doc(v) for v in doc]
        return doc


# The secrets this process knows of: every config it runs (or validates) adds its own, so a surface
# built without a config at hand (the run history, the dead letters) still masks them.
KNOWN = Scrubber()


def remember(settings: Any) -> list[str]:
    """Add a config's secrets to those every surface masks; returns them."""
    found = secrets_of(settings)
    KNOWN.add(found)
    return found


def redact(text: str) -> str:
    return KNOWN.redact(text)


def redact_doc(doc: Any) -> Any:
    return KNOWN.redact_doc(doc)
