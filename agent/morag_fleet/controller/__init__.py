"""The fleet controller: ROUTER server, fleet state with SQLite history, metrics and status views.
Operators reach it through a local control socket (see `morag-fleet status`)."""
