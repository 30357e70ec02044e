"""Command-line entry points: `morag-agent` (one per host) and `morag-fleet` (operators).
Each sub-command lives next to the code it drives; this package only wires them up."""
