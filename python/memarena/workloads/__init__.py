"""Built-in workloads, one module per family."""
