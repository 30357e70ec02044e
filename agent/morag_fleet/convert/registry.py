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


def capabilities_in_child(settings: AgentSettings, timeout: float = 300.0
                          ) -> dict[str, Availability]:
    """`capabilities()` asked of a short-lived process. Finding out imports every converter's
    libraries (numpy, PyAV, CTranslate2, pandas through pytesseract: memory that never leaves);
    the agent's main process never converts, so it stays small, and a library that crashes on
    import takes only that process with it. After such a crash each type is asked on its own,
    so one broken converter does not take the others out."""
    blob = dict(settings.__dict__)
    report = _ask_child(blob, timeout)
    if report is not None:
        return report
    result: dict[str, Availability] = {}
    for content_type in settings.content_types:
        alone = _ask_child({**blob, "content_types": [content_type]}, timeout)
        result[content_type] = (alone or {}).get(content_type) or Availability(
            False, "the converter check crashed (its libraries kill the process on import)")
    return result


def _ask_child(settings_blob: dict[str, Any], timeout: float) -> dict[str, Availability] | None:
    """None when the child died or hung (then it is killed)."""
    from multiprocessing import get_context

    context = get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_report_capabilities, args=(sender, settings_blob),
                            name="morag-converter-check", daemon=True)
    child.start()
    sender.close()
    try:
        return receiver.recv() if receiver.poll(timeout) else None
    except (EOFError, OSError):  # it died before answering
        return None
    finally:
        if child.is_alive():
            child.kill()
        child.join(5)
        receiver.close()


def _report_capabilities(sender: Any, settings_blob: dict[str, Any]) -> None:
    sender.send(capabilities(AgentSettings(**settings_blob)))


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
    "device", "device_index", "compute_type", "cpu_threads", "threads",
)
