from __future__ import annotations

from tests.controller.conftest import cleanup, short_tmp  # noqa: F401 - shared fixtures
