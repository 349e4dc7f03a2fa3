"""The hub processes of the failure limit test are those of the edge tests."""
from tests.edge.conftest import hub_factory, mysql_url  # noqa: F401
