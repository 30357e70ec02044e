"""CurveZMQ key files as written by `zmq.auth.create_certificates`: NAME.key holds the public key,
NAME.key_secret both keys and is readable by its owner only. The secret never leaves its host."""

from __future__ import annotations

import os
from pathlib import Path

import zmq.auth


class KeyFileError(ValueError):
    """A key file is missing or unreadable; the message names the file and what to run."""


def create_key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """Write NAME.key and NAME.key_secret (0600); refuses to overwrite an existing pair."""
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    if public.exists() or secret.exists():
        raise KeyFileError(f"key pair {name!r} already exists in {directory}; remove it first")
    old_umask = os.umask(0o077)
    try:
        public_path, secret_path = zmq.auth.create_certificates(str(directory), name)
    finally:
        os.umask(old_umask)
    os.chmod(secret_path, 0o600)
    os.chmod(public_path, 0o644)
    return Path(public_path), Path(secret_path)


def load_secret(path: str | Path) -> tuple[bytes, bytes]:
    """(public, secret) from a NAME.key_secret file."""
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read secret key file {path}: {exc}") from None
    if not secret:
        raise KeyFileError(f"{path} holds no secret key (use the .key_secret file)")
    return public, secret


def load_public(path: str | Path) -> bytes:
    """The public key from a NAME.key (or NAME.key_secret) file."""
    try:
        public, _ = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read public key file {path}: {exc}") from None
    return public


def authorized_names(directory: Path) -> dict[str, str]:
    """z85 public key -> file stem for every *.key file, for naming keys in logs and views."""
    names: dict[str, str] = {}
    for path in sorted(directory.glob("*.key")):
        try:
            names[load_public(path).decode()] = path.stem
        except KeyFileError:
            continue
    return names
