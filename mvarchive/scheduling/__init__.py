"""Schedules: Prefect deployments of the archive flow, the process that serves them, and the
drift event that starts retraining.

Importing this package imports nothing heavy; each module imports Prefect (and the flows)
where it needs them.
"""
