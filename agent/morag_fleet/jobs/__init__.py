"""MoRAG remote-jobs API: the HTTP client, job/result models and the hardened source download.
Everything here speaks MoRAG's contract as its server really answers, warts included."""
