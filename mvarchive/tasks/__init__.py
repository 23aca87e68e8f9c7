"""Prefect tasks: thin wrappers over library functions, passed references, run on Dask workers."""
