"""Which converter handles which content type on this host.

The agent core calls only `build_converter`, `capabilities` and `merged_options`; converters are
imported lazily so that a document-only host never imports the audio stack.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from morag_fleet.convert.base import Availability, Converter
from morag_fleet.settings import AgentSettings

MORAG_BACKEND = "morag"

# content type -> backend name -> "module:Class"; every type also accepts MORAG_BACKEND and a
# plug-in given directly as "module:Class"
BACKENDS: dict[str, dict[str, str]] = {
    "audio": {"default": "morag_fleet.convert.audio:AudioConverter"},
    "video": {"default": "morag_fleet.convert.video:VideoConverter"},
    "document": {
        "default": "morag_fleet.convert.document:DocumentConverter",
        "text": "morag_fleet.convert.text:TextConverter",
    },
    "image": {
        "default": "morag_fleet.convert.image:ImageConverter",
        "tesseract": "morag_fleet.convert.image:ImageConverter",
        "rapidocr": "morag_fleet.convert.rapidocr_image:RapidOcrImageConverter",
    },
    "web": {"default": "morag_fleet.convert.web:WebConverter"},
    "youtube": {"default": "morag_fleet.convert.youtube:YoutubeConverter"},
}


def backend_name(content_type: str, settings: AgentSettings) -> str:
    return settings.converters.get(content_type, "default")


def backend_names(content_type: str) -> list[str]:
    """What `converters: {<type>: ...}` may name for this type."""
    return [*BACKENDS.get(content_type, {}), MORAG_BACKEND]


def build_converter(content_type: str, settings: AgentSettings) -> Converter:
    """A fresh converter instance; raises KeyError naming the type/backend when there is none."""
    name = backend_name(content_type, settings)
    options = dict(settings.converter_options.get(content_type, {}))
    if name == MORAG_BACKEND:
        from morag_fleet.convert.morag_backend import MoragConverter

        return MoragConverter(content_type, options)
    if ":" in name:  # plug-in syntax: "package.module:Class"
        target = name
    else:
        try:
            target = BACKENDS[content_type][name]
        except KeyError:
            known = ", ".join(backend_names(content_type)) or "none"
            raise KeyError(f"no converter {name!r} for content type {content_type!r} "
                           f"(known: {known}, or module:Class)") from None
    cls = _load(target)
    return cls(options) if _takes_options(cls) else cls()


def _takes_options(cls: Any) -> bool:
    """Built-in converters take their converter_options; a plug-in may take nothing."""
    try:
        return len(inspect.signature(cls).parameters) >= 1
    except (TypeError, ValueError):
        return False


@functools.cache
def _load(target: str) -> Any:
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


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
    """Config options for the type's converter, overridden by the job's task_options.

    Security-relevant operator settings (which addresses may be fetched, size and pixel caps)
    are not overridable by a job: a job must not be able to unlock loopback for itself.
    """
    options = dict(settings.converter_options.get(content_type, {}))
    job = {k: v for k, v in (task_options or {}).items() if k != "metadata"}
    for key in OPERATOR_ONLY_OPTIONS:
        job.pop(key, None)
    options.update(job)
    return options


OPERATOR_ONLY_OPTIONS = (
    "allow_private", "max_bytes", "max_pixels", "max_filesize", "model_dir", "models_dir",
    "device", "device_index", "compute_type", "cpu_threads",
)
