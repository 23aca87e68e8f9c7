"""A damaged archive layout fails with an ArchiveError naming the node, not a later AttributeError."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from mvarchive.storage import ArchiveError
from mvarchive.storage.zarr_nodes import array_at, group_at, int_attr, read, str_list_attr


@pytest.fixture
def root(tmp_path) -> zarr.Group:
    root = zarr.open_group(str(tmp_path / "a.zarr"), mode="w", zarr_format=3)
    index = root.create_group("index")
    index.create_array("rows", shape=(3,), dtype="int64", fill_value=0)[:] = np.array([4, 5, 6])
    index.attrs.update({"rows": 3, "blobs": ["b1", "b2"], "bad_rows": "3", "bad_blobs": ["b1", 2]})
    return root


def test_nodes_and_attributes_of_the_expected_kind_are_read(root: zarr.Group) -> None:
    index = group_at(root, "index")
    np.testing.assert_array_equal(read(array_at(index, "rows"), slice(1, 3)), [5, 6])
    assert int_attr(index, "rows", 0) == 3 and int_attr(index, "missing", 7) == 7
    assert str_list_attr(index, "blobs") == ["b1", "b2"] and str_list_attr(index, "missing") is None


def test_a_node_of_the_other_kind_is_an_archive_error_naming_it(root: zarr.Group) -> None:
    with pytest.raises(ArchiveError, match="^index: expected a Zarr array, found a group"):
        array_at(root, "index")
    with pytest.raises(ArchiveError, match="^index/rows: expected a Zarr group, found an array"):
        group_at(root, "index/rows")


def test_an_attribute_of_the_wrong_type_is_an_archive_error_naming_it(root: zarr.Group) -> None:
    index = group_at(root, "index")
    with pytest.raises(ArchiveError, match="'bad_rows' is '3', expected an integer"):
        int_attr(index, "bad_rows", 0)
    with pytest.raises(ArchiveError, match="'bad_blobs' is .* expected a list of strings"):
        str_list_attr(index, "bad_blobs")
