"""The per-host agent: claim loop, slot processes, durable journal/outbox, preflight, GPU probe.
The main process never converts; it claims, supervises, journals and reports."""
