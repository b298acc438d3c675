"""The supported names a record is checked against (no torch) are exactly the functions the
tables of ``mat2grad.shallow.functions`` implement."""

from __future__ import annotations

import pytest

from mat2grad.errors import Mat2GradError
from mat2grad.shallow import functions, names


@pytest.mark.parametrize(
    ("table", "supported"),
    [
        (functions.TRANSFER, names.TRANSFER_NAMES),
        (functions.WEIGHT, names.WEIGHT_NAMES),
        (functions.NET_INPUT, names.NET_INPUT_NAMES),
        (functions.PROCESSING, names.PROCESSING_NAMES),
    ],
)
def test_the_names_are_the_tables(table, supported):
    assert set(table) == supported


def test_the_zero_derivative_functions_are_transfer_functions():
    assert names.ZERO_DERIVATIVE <= names.TRANSFER_NAMES
    assert functions.ZERO_DERIVATIVE is names.ZERO_DERIVATIVE


def test_check_supported_lists_the_names():
    names.check_supported(names.WEIGHT_NAMES, "dist", "weight", "here")
    with pytest.raises(Mat2GradError, match=r"here: weight function 'x' is not supported .*"):
        names.check_supported(names.WEIGHT_NAMES, "x", "weight", "here")
    assert functions.lookup(functions.WEIGHT, "dist", "weight", "here") is functions.WEIGHT["dist"]
