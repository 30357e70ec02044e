"""morag-fleet: remote conversion agents, fleet controller and reference job server for MoRAG."""

__version__ = "0.1.0"
