"""The Debian mirrors this machine's apt already uses; hosts reach them through the proxy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import HarnessError

SOURCES_DIR = Path("/etc/apt/sources.list.d")


@dataclass(frozen=True)
class Mirrors:
    archive: str  # e.g. http://deb.debian.org/debian
    security: str | None  # e.g. http://deb.debian.org/debian-security


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas, current = [], {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current = {}
        elif not line.startswith("#") and ":" in line and not line[0].isspace():
            key, value = line.split(":", 1)
            current[key.strip().lower()] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def _entries(sources_dir: Path) -> list[tuple[str, list[str]]]:
    """(uri, suites) for every enabled `deb` source; one-line and deb822 formats."""
    entries = []
    for path in sorted(sources_dir.glob("*.sources")):
        for stanza in _deb822_stanzas(path.read_text()):
            if "deb" in stanza.get("types", "").split() and stanza.get("enabled", "yes") == "yes":
                for uri in stanza.get("uris", "").split():
                    entries.append((uri, stanza.get("suites", "").split()))
    for path in [Path("/etc/apt/sources.list"), *sorted(sources_dir.glob("*.list"))]:
        if path.is_file():
            for line in path.read_text().splitlines():
                words = line.split("#", 1)[0].split()
                if len(words) >= 3 and words[0] == "deb":
                    words = [w for w in words if not w.startswith("[")]
                    entries.append((words[1], [words[2]]))
    return entries


def find_mirrors(suite: str = "bookworm", sources_dir: Path = SOURCES_DIR) -> Mirrors:
    archive = security = None
    for uri, suites in _entries(sources_dir):
        if not uri.startswith("http://"):
            continue  # the proxy speaks plain http; https sources are not Debian's mirrors here
        if suite in suites and archive is None:
            archive = uri.rstrip("/")
        if f"{suite}-security" in suites and security is None:
            security = uri.rstrip("/")
    if archive is None:
        raise HarnessError(f"no http Debian mirror for {suite} in {sources_dir}; the harness "
                           "builds hosts from the mirror this machine's apt uses")
    return Mirrors(archive, security)
