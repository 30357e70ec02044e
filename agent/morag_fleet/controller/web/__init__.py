"""The controller's web side: one HTTP server for Prometheus `/metrics` and the operator
dashboard (fleet, jobs, failures and agent pages, live through Server-Sent Events).

It runs in threads beside the single-threaded ingest loop, so it only ever reads the fleet
state (copies taken under the GIL, never a lock the loop waits on), reads the job history
through the controller's read-only `History` connection, and sends every action through the
control socket, where the loop serves it between batches like a CLI command."""
