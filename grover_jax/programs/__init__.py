"""Stage programs: each is one function the CLI calls (vocabulary, store, pretrain, ...)."""
