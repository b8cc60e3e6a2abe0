"""Keep secrets out of everything a process emits.

A process registers the secret values it knows of: at start, those of the
environment variables that hold secrets (`ANTHROPIC_API_KEY`, `NATS_PASSWORD`,
any `*_API_KEY`, `*_TOKEN`, `*_SECRET`, `*_PASSWORD`, ...), and, as it reads
them, the contents of key, credentials and seed files. `redact` replaces every
registered value, and anything shaped like a well-known key (`sk-...`,
`sk-ant-...`, NKey seeds), with `[REDACTED]`.

It is applied at the exits, once each: the log formatters, a Failure's detail
built from an exception, DLQ entries, exported spans, and the CLI's errors.
"""

import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

REDACTED = "[REDACTED]"

#: Environment variables whose values are secrets, by name.
_SECRET_NAME = re.compile(
    r"(^|_)(API_?KEY|PRIVATE_KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE
)
#: Variables that match the pattern above but hold no secret.
_NOT_SECRET = frozenset({"NATSFLEET_LOG", "PYTEST_CURRENT_TEST"})
# Shorter values would redact ordinary words (a password "test" in every line).
MIN_SECRET_CHARS = 8

#: Shapes of well-known keys, redacted even when nobody registered them.
_SHAPES = (
    r"sk-ant-[A-Za-z0-9_\-]{8,}",  # Anthropic
    r"sk-(?:proj-)?[A-Za-z0-9_\-]{16,}",  # OpenAI and compatible servers
    r"\bS[UOANCPX][A-Z2-7]{56}\b",  # NATS NKey seeds
)

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None
_bytes_pattern: re.Pattern[bytes] | None = None
_env_loaded = False


def is_secret_name(name: str) -> bool:
    """Whether an environment variable of this name holds a secret."""
    return name not in _NOT_SECRET and _SECRET_NAME.search(name) is not None


def register(*values: str | None) -> None:
    """Redact these values from now on (too short or empty ones are ignored)."""
    global _pattern, _bytes_pattern
    new = {v.strip() for v in values if v and len(v.strip()) >= MIN_SECRET_CHARS}
    with _lock:
        if new <= _values:
            return
        _values.update(new)
        _pattern = _bytes_pattern = None


def register_file(path: str | os.PathLike[str]) -> None:
    """Redact the contents of a key, credentials or seed file, line by line."""
    try:
        text = Path(path).expanduser().read_text(errors="replace")
    except OSError:
        return
    lines = [line.strip() for line in text.splitlines()]
    register(text.strip(), *(line for line in lines if not line.startswith("-----")))


def load_environment(env: Mapping[str, str] | None = None) -> None:
    """Register the values of the environment's secret variables (at process start)."""
    global _env_loaded
    source = os.environ if env is None else env
    register(*(value for name, value in source.items() if is_secret_name(name)))
    if env is None:
        _env_loaded = True


def _compiled() -> re.Pattern[str]:
    global _pattern
    if not _env_loaded:
        load_environment()
    with _lock:
        if _pattern is None:
            # Longest first, so a secret containing another is replaced whole.
            known = [re.escape(v) for v in sorted(_values, key=len, reverse=True)]
            _pattern = re.compile("|".join([*known, *_SHAPES]))
        return _pattern


def redact(text: str) -> str:
    """`text` with every secret replaced by `[REDACTED]`."""
    if not text:
        return text
    return _compiled().sub(REDACTED, text)


def redact_bytes(data: bytes) -> bytes:
    """`data` with every secret (as UTF-8) replaced by `[REDACTED]`."""
    global _bytes_pattern
    if not data:
        return data
    pattern = _compiled()
    with _lock:
        if _bytes_pattern is None:
            _bytes_pattern = re.compile(pattern.pattern.encode())
        compiled = _bytes_pattern
    return compiled.sub(REDACTED.encode(), data)


def redact_mapping(values: Mapping[str, str]) -> dict[str, str]:
    """A copy of a header mapping with its values redacted."""
    return {key: redact(value) for key, value in values.items()}


def known_count() -> int:
    """How many secret values are registered (for tests and diagnostics)."""
    _compiled()
    return len(_values)


def reset(values: Iterable[str] = ()) -> None:
    """Forget every registered value (tests); the environment is read again lazily."""
    global _pattern, _bytes_pattern, _env_loaded
    with _lock:
        _values.clear()
        _values.update(values)
        _pattern = _bytes_pattern = None
        _env_loaded = False
