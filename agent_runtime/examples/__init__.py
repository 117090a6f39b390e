"""Example pipelines: `python -m agent_runtime.examples.operations` and `...examples.risk`."""
