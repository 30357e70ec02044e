"""The per-host agent: scheduler loop, slot processes, durable journal/outbox, preflight, GPU probe.
The main process never converts; it claims, supervises, journals and reports."""
