"""Prefect flows: archive, restore, train, demo. Each has a plain runner that wires services."""
