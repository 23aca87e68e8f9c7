"""The model lifecycle: versions of trained codecs in the MLflow Model Registry, the
``champion`` alias, the promotion gate and the retrain flow (see docs/models.md).

Import the submodules directly (``mvarchive.models.registry``, ``.gate``, ``.evaluate``):
this package imports nothing heavy so that ``models:/`` URIs can be recognized cheaply.
"""
