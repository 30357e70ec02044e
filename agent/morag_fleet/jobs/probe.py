"""`test-connection`: is the configured URL a MoRAG remote-jobs API we may use?

Polling is never used to find out: a poll claims a job, and MoRAG never gives a claimed job back.
Instead two harmless reads:

1. `GET /api/v1/remote-jobs/<random uuid>/status`. Connection refused, DNS failure and timeouts
   mean *unreachable*; a certificate or handshake failure means *tls*; 401/403 mean *auth*.
   MoRAG answers an unknown job with 404 `{"detail": "Job <uuid> not found"}`: a detail naming
   our uuid identifies it (a generic web server or another FastAPI app says "Not Found").
2. Otherwise `GET /openapi.json` (FastAPI publishes it unless disabled): a document listing
   `/api/v1/remote-jobs/poll` identifies the API; anything else means *not_morag*.

MoRAG itself enforces no auth, so against a bare MoRAG a wrong key still reports ok; a proxy or
the reference server with a token set is where *auth* shows up.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from morag_fleet.jobs.models import ConnectionReport

if TYPE_CHECKING:
    from morag_fleet.jobs.client import MoragClient
    from morag_fleet.settings import AgentSettings

POLL_PATH = "/api/v1/remote-jobs/poll"


def probe_configured_api(settings: AgentSettings) -> ConnectionReport:
    """`probe_api` with a client of its own, closed afterwards (`test-connection`, `check`)."""
    from morag_fleet.jobs.client import MoragClient

    with MoragClient(settings) as client:
        return probe_api(client)


def probe_api(client: MoragClient) -> ConnectionReport:
    bundle = client.settings.ca_bundle
    if client.settings.verify_tls and bundle and not Path(bundle).is_file():
        return ConnectionReport(False, "tls", f"ca_bundle {bundle} is not a readable file")
    probe_id = str(uuid.uuid4())
    url = client.job_url(probe_id, "status")
    try:
        response, body = client.get_once(url)
    except requests.exceptions.SSLError as exc:
        return ConnectionReport(False, "tls", _tls_message(client, exc))
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        return ConnectionReport(False, "unreachable",
                                f"cannot reach {client.base_url}: {client.scrub(exc)}")
    except Exception as exc:  # the report must say what happened, whatever it was
        return ConnectionReport(False, "error", f"GET {url} failed: {client.scrub(exc)}")

    code = response.status_code
    if code in (401, 403):
        hint = "the API key was refused" if client.settings.api_key else "no api_key is set"
        return ConnectionReport(False, "auth", f"{client.base_url} answered {code}: {hint}")
    if code == 404 and probe_id in _detail(body):
        return ConnectionReport(True, "ok", f"MoRAG remote-jobs API at {client.base_url} "
                                            "(unknown job answered 404 as MoRAG does)")
    if code >= 500:
        return ConnectionReport(False, "error", f"{client.base_url} answered {code} to a status "
                                                f"request: {client.scrub(_detail(body), 200)}")
    if _openapi_lists_poll(client):
        return ConnectionReport(True, "ok", f"MoRAG remote-jobs API at {client.base_url} "
                                            f"(its OpenAPI document lists {POLL_PATH})")
    kind = response.headers.get("Content-Type", "no content type")
    return ConnectionReport(
        False, "not_morag",
        f"{client.base_url} answers, but not as a MoRAG API: a job status request got {code} "
        f"({kind}) and no OpenAPI document lists {POLL_PATH}; is api_base_url the MoRAG root?")


def _detail(body: bytes) -> str:
    try:
        data: Any = json.loads(body)
    except ValueError:
        return ""
    detail = data.get("detail") if isinstance(data, dict) else None
    return detail if isinstance(detail, str) else ""


def _openapi_lists_poll(client: MoragClient) -> bool:
    try:
        response, body = client.get_once(f"{client.base_url}/openapi.json")
        paths = json.loads(body).get("paths") if response.status_code == 200 else None
    except (requests.exceptions.RequestException, ValueError, AttributeError):
        return False
    except Exception:  # an oversize or odd answer is simply "not listed"
        return False
    return isinstance(paths, dict) and POLL_PATH in paths


def _tls_message(client: MoragClient, exc: Exception) -> str:
    where = f"CA bundle {client.settings.ca_bundle}" if client.settings.ca_bundle \
        else "the system CA store"
    return (f"TLS failure talking to {client.base_url} (certificate checked against {where}): "
            f"{client.scrub(exc, 300)}. A private CA needs ca_bundle; verify_tls: false turns "
            "checking off (not recommended).")
