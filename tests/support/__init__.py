"""Test support: real server processes (the reference job server, a MoRAG-like double) and
helpers the test suites share."""
