"""The reference job server: MoRAG's remote-jobs contract plus optional extensions
(atomic claims, leases, long polling, upload) for the demo, the tests and the benchmarks."""
