"""Which converter handles which content type on this host.

The agent core calls only `build_converter`, `capabilities` and `merged_options`; converters are
imported lazily so that a document-only host never imports the audio stack.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from morag_fleet.convert.base import Availability, Converter
from morag_fleet.settings import AgentSettings

# content type -> backend name -> "module:Class"
BACKENDS: dict[str, dict[str, str]] = {
    "document": {"default": "morag_fleet.convert.text:TextConverter"},
}


def backend_name(content_type: str, settings: AgentSettings) -> str:
    return settings.converters.get(content_type, "default")


def build_converter(content_type: str, settings: AgentSettings) -> Converter:
    """A fresh converter instance; raises KeyError naming the type/backend when there is none."""
    name = backend_name(content_type, settings)
    if ":" in name:  # a plug-in converter named by import path, "package.module:Class"
        target = name
    else:
        try:
            target = BACKENDS[content_type][name]
        except KeyError:
            raise KeyError(f"no converter {name!r} for content type {content_type!r}") from None
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls()


def capabilities(settings: AgentSettings) -> dict[str, Availability]:
    """For each configured content type: can it be converted here, and if not, why."""
    result: dict[str, Availability] = {}
    for content_type in settings.content_types:
        try:
            result[content_type] = build_converter(content_type, settings).available()
        except Exception as exc:  # an import error of an optional extra is a reason, not a crash
            result[content_type] = Availability(False, f"{type(exc).__name__}: {exc}")
    return result


def merged_options(
    content_type: str, settings: AgentSettings, task_options: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Config options for the type's converter, overridden by the job's task_options."""
    options = dict(settings.converter_options.get(content_type, {}))
    options.update({k: v for k, v in (task_options or {}).items() if k != "metadata"})
    return options
