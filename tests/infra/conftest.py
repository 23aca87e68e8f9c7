# Temporary: the root conftest will load these with pytest_plugins = ["tests.s3_server"].
from tests.s3_server import s3_bucket, s3_server  # noqa: F401
