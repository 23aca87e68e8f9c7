"""What a worker process keeps between tasks: its loaded codecs (:mod:`.model_cache`).

Used by the Prefect tasks (:mod:`mvarchive.tasks`) and by the evaluation package alike, so
neither imports the other for it.
"""
