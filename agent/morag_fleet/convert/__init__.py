"""Converters, one module per content type, behind the small interface in `base`.
They run inside slot processes, so they may hold models loaded between jobs."""
