"""The MAT-file boundary: reading every format into the neutral tree, MATLAB-style paths,
sample layouts, and atomic writes."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.io

import mat2grad
from mat2grad import Mat2GradError, matfile
from mat2grad.matfile import MatStruct, Opaque
from tests.support.helpers import CORPUS, corpus_cases, requires_corpus


@pytest.mark.parametrize("case", corpus_cases("shallow/"))
def test_every_corpus_network_is_found_at_its_path(case):
    found = mat2grad.find_networks(CORPUS / case["file"])
    paths = [f.path for f in found]
    assert case["network"] in paths
    assert all(f.spec is not None for f in found), [f.error for f in found]


@requires_corpus
def test_java_neighbours_do_not_break_the_scan():
    variables = matfile.read_mat(CORPUS / "shallow/abj247_nntool_state.mat")
    opaque = [p for p, v in matfile.walk(variables) if isinstance(v, Opaque)]
    assert any("java" in variables[p].classname for p in opaque if p in variables)
    net = matfile.resolve(variables, "STATE.network.values{1}")
    assert isinstance(net, MatStruct) and net.classname == "network"


@requires_corpus
def test_mcos_object_is_decoded_with_mat_io():
    variables = matfile.read_mat(CORPUS / "shallow/sudoarash_mcos_v9.mat")
    assert "net" in variables and "None" not in variables
    assert variables["net"].classname == "network"
    assert matfile.as_text(variables["net"]["any"]["version"]) == "9"


@requires_corpus
def test_compact_integer_storage_is_cast_on_use():
    variables = matfile.read_mat(CORPUS / "shallow/saniavn_net1_v7.mat")
    example = matfile.resolve(variables, "net1.inputs{1}.exampleInput")
    assert example.dtype == np.uint8  # kept compact in the tree (340 x 63159)
    assert matfile.as_float(example[:, :3]).dtype == np.float64


def test_paths_address_fields_cells_and_struct_arrays():
    inner = MatStruct({"v": np.array([[7.0]])})
    arr = np.empty((1, 2), dtype=object)
    arr[0, 0], arr[0, 1] = np.array([[1.0]]), inner
    sa = matfile.MatStructArray(
        np.array([[MatStruct({"k": 1}), MatStruct({"k": 2})]], dtype=object)
    )
    variables = {"S": MatStruct({"c": arr, "a": sa})}
    assert matfile.resolve(variables, "S.c{2}.v")[0, 0] == 7.0
    assert matfile.resolve(variables, "S.c{1,2}.v")[0, 0] == 7.0
    assert matfile.resolve(variables, "S.a(2).k") == 2
    assert matfile.parse_path("STATE.network.values{1}") == [
        ("field", "STATE"),
        ("field", "network"),
        ("field", "values"),
        ("cell", (1,)),
    ]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("T", "no variable 'T' \\(variables: S\\)"),
        ("S.zz", "'S' has no field 'zz' \\(it holds: c\\)"),
        ("S.c{3}", "has size 1x1; index \\(3,\\) is out of range"),
        ("S{1}", "cannot index it with \\{\\}"),
        ("S.c{0}", "indices start at 1"),
        ("3abc", "not a MATLAB-style path"),
    ],
)
def test_bad_paths_say_what_exists(path, message):
    arr = np.empty((1, 1), dtype=object)
    arr[0, 0] = np.array([[1.0]])
    with pytest.raises(Mat2GradError, match=message):
        matfile.resolve({"S": MatStruct({"c": arr})}, path, source="f.mat")


def test_not_a_mat_file(tmp_path):
    bad = tmp_path / "notes.mat"
    bad.write_text("hello, this is not MATLAB\n" * 20)
    with pytest.raises(Mat2GradError, match="not a MATLAB MAT-file"):
        matfile.read_mat(bad)


def test_missing_file(tmp_path):
    with pytest.raises(Mat2GradError, match="no such file"):
        matfile.read_mat(tmp_path / "nope.mat")


@requires_corpus
def test_truncated_file(tmp_path):
    data = (CORPUS / "shallow/abj247_ann.mat").read_bytes()
    cut = tmp_path / "cut.mat"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(Mat2GradError, match="truncated or corrupt"):
        matfile.read_mat(cut)


def test_write_round_trip(tmp_path):
    out = tmp_path / "r.mat"
    cell = [np.arange(6.0).reshape(2, 3), np.ones((1, 1))]
    matfile.write_mat(out, {"Y": np.arange(4.0).reshape(2, 2), "C": cell, "n": 3})
    back = scipy.io.loadmat(out)
    np.testing.assert_array_equal(back["Y"], [[0, 1], [2, 3]])
    assert back["C"].shape == (1, 2)
    np.testing.assert_array_equal(back["C"][0, 0], cell[0])
    assert back["n"].dtype == np.float64  # never int64 in MATLAB


def test_failed_write_leaves_the_old_file_and_no_temporaries(tmp_path):
    out = tmp_path / "r.mat"
    matfile.write_mat(out, {"Y": np.ones((2, 2))})
    before = out.read_bytes()
    with pytest.raises(Mat2GradError, match="could not write"):
        matfile.write_mat(out, {"Y": np.ones((2, 2)), "Z": object()})
    assert out.read_bytes() == before
    assert os.listdir(tmp_path) == ["r.mat"]


def test_invalid_variable_names_are_rejected(tmp_path):
    with pytest.raises(Mat2GradError, match="not a valid MATLAB variable name"):
        matfile.write_mat(tmp_path / "r.mat", {"_x": np.ones(1)})
    assert not (tmp_path / "r.mat").exists()


class TestSamples:
    def test_columns_and_rows(self):
        x = np.arange(6.0).reshape(2, 3)  # R=2, Q=3
        (cols,) = matfile.samples_from_matlab(x, (2,))
        (rows,) = matfile.samples_from_matlab(x.T, (2,), samples="rows")
        np.testing.assert_array_equal(cols, x.T)
        np.testing.assert_array_equal(rows, x.T)
        np.testing.assert_array_equal(matfile.samples_to_matlab(cols), x)

    def test_wrong_rows_suggest_the_transpose(self):
        with pytest.raises(
            Mat2GradError, match="has 3 rows but the network takes 2.*--samples rows"
        ):
            matfile.samples_from_matlab(np.zeros((3, 2)), (2,), what="X")

    def test_wrong_rows_without_a_fitting_transpose(self):
        with pytest.raises(
            Mat2GradError, match="has 3 rows but the network takes 4 \\(inputs\\{1\\}.size\\)$"
        ):
            matfile.samples_from_matlab(np.zeros((3, 2)), (4,), what="X")

    def test_several_inputs_take_a_cell(self):
        cell = np.empty((2, 1), dtype=object)
        cell[0, 0], cell[1, 0] = np.zeros((2, 5)), np.ones((3, 5))
        a, b = matfile.samples_from_matlab(cell, (2, 3))
        assert a.shape == (5, 2) and b.shape == (5, 3)
        with pytest.raises(Mat2GradError, match="needs a cell array with 2 matrices"):
            matfile.samples_from_matlab(np.zeros((2, 5)), (2, 3))

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("abc", "expected a numeric matrix, found char"),
            (np.zeros((2, 0)), "no samples"),
            (np.zeros((2, 3), dtype=complex), "complex values are not supported"),
        ],
    )
    def test_bad_data(self, value, message):
        with pytest.raises(Mat2GradError, match=message):
            matfile.samples_from_matlab(value, (2,))

    def test_default_variable_selection(self):
        variables = {"net": MatStruct({}), "data": np.zeros((2, 3))}
        assert matfile.select_variable(variables, None, source="f")[0] == "data"
        variables["other"] = np.ones((2, 2))
        with pytest.raises(Mat2GradError, match="candidates: data \\(a 2x3 double array\\), other"):
            matfile.select_variable(variables, None, source="f")
        variables["X"] = np.ones((1, 1))
        assert matfile.select_variable(variables, None, source="f")[0] == "X"


class TestTimeSeriesLayout:
    """MATLAB's numSignals x TS cells of R x Q matrices <-> (Q, TS, R) arrays."""

    def _cell(self, q=3, ts=4, sizes=(2, 1), seed=0):
        rng = np.random.default_rng(seed)
        arrays = [rng.normal(size=(q, ts, r)) for r in sizes]
        cell = np.empty((len(sizes), ts), dtype=object)
        for i, a in enumerate(arrays):
            for t in range(ts):
                cell[i, t] = a[:, t, :].T  # R x Q
        return arrays, cell

    def test_cell_round_trip(self):
        arrays, cell = self._cell()
        got, ts, matrix = matfile.sequences_from_matlab(cell, (2, 1))
        assert ts == 4 and not matrix
        for a, g in zip(arrays, got, strict=True):
            np.testing.assert_array_equal(g, a)
        back = matfile.sequences_to_matlab(got)
        assert back.shape == (2, 4) and back[0, 1].shape == (2, 3)
        np.testing.assert_array_equal(back[1, 3], cell[1, 3])

    def test_plain_matrix_is_one_series_and_comes_back_plain(self):
        x = np.arange(12.0).reshape(2, 6)  # R x TS
        (seq,), ts, matrix = matfile.sequences_from_matlab(x, (2,))
        assert seq.shape == (1, 6, 2) and ts == 6 and matrix
        np.testing.assert_array_equal(seq[0, 3], x[:, 3])
        np.testing.assert_array_equal(matfile.sequences_to_matlab([seq], matrix=True), x)
        rows, _, _ = matfile.sequences_from_matlab(x.T, (2,), samples="rows")
        np.testing.assert_array_equal(rows[0], seq[0:1])

    def test_no_signals_gives_the_number_of_steps(self):
        assert matfile.sequences_from_matlab(np.empty((0, 30), dtype=object), ()) == ([], 30, False)

    @pytest.mark.parametrize(
        ("value", "sizes", "message"),
        [
            (np.zeros((3, 6)), (2,), "has 3 features per time step but the network takes 2"),
            (np.zeros((6, 2)), (2,), "pass --samples rows"),
            (np.zeros((2, 6)), (2, 1), r"must be a 2 x TS cell"),
            (np.empty((4, 1), dtype=object), (2,), "TS x 1 cell: transpose it"),
        ],
    )
    def test_bad_series(self, value, sizes, message):
        with pytest.raises(Mat2GradError, match=message):
            matfile.sequences_from_matlab(value, sizes, what="X")

    def test_series_count_must_agree_across_steps(self):
        _, cell = self._cell()
        cell[0, 2] = np.zeros((2, 5))
        with pytest.raises(Mat2GradError, match="same number of series"):
            matfile.sequences_from_matlab(cell, (2, 1))

    def test_states(self):
        arrays, cell = self._cell(ts=2)
        got = matfile.states_from_matlab(cell, (2, 1), 2, what="Xi")
        np.testing.assert_array_equal(got[1], arrays[1])
        assert matfile.states_from_matlab(None, (2,), 2) is None
        assert matfile.states_from_matlab(np.zeros((0, 0)), (2,), 2) is None
        with pytest.raises(Mat2GradError, match="expected a 2x3 cell"):
            matfile.states_from_matlab(cell, (2, 1), 3, what="Xi")

    def test_sequence_jacobian_layout(self):
        block = np.random.default_rng(0).normal(size=(2, 5, 3, 5, 4))  # (Q, TS, S, TS, R)
        m = matfile.sequence_jacobian_to_matlab(block)
        assert m.shape == (3, 4, 5, 5, 2)
        np.testing.assert_array_equal(m[:, :, 3, 1, 1], block[1, 3, :, 1, :])


@pytest.mark.parametrize(
    ("value", "samples", "expected"),
    [
        (np.array([[1.0, 2.0, 3.0]]), "columns", [(3, 1)]),  # 1 x Q: per sample
        (np.array([[1.0], [2.0]]), "columns", [(1, 2)]),  # S x 1: per row
        (np.array([[1.0, 2.0, 3.0]]), "rows", [(1, 3)]),  # with --samples rows: per row
        (np.array([[0.5]]), "columns", [(1, 1)]),
    ],
)
def test_error_weights_from_matlab_layout(value, samples, expected):
    out = matfile.error_weights_from_matlab(value, 1, samples=samples)
    assert [w.shape for w in out] == expected


def test_error_weights_per_output_cell_and_errors():
    cell = np.empty((2, 1), dtype=object)
    cell[0, 0], cell[1, 0] = np.ones((1, 4)), np.ones((3, 4))
    out = matfile.error_weights_from_matlab(cell, 2)
    assert [w.shape for w in out] == [(4, 1), (4, 3)]
    with pytest.raises(Mat2GradError, match="3 outputs"):
        matfile.error_weights_from_matlab(cell, 3)
    with pytest.raises(Mat2GradError, match="numeric"):
        matfile.error_weights_from_matlab("w", 1)


def test_weight_cells_are_matlab_cells_with_empty_holes(tmp_path):
    cells = matfile.weight_cells((2, 2), {(2, 1): np.ones((1, 3)), (1, 1): np.zeros(3)})
    matfile.write_mat(tmp_path / "w.mat", {"W": cells, "v": matfile.column(np.arange(3.0))})
    got = scipy.io.loadmat(tmp_path / "w.mat")
    assert got["W"].shape == (2, 2)
    assert got["W"][0, 0].shape == (3, 1)  # a 1-D block (bias) is a column
    assert got["W"][1, 0].shape == (1, 3)
    assert got["W"][0, 1].shape == (0, 0) and got["W"][1, 1].shape == (0, 0)
    assert got["v"].shape == (3, 1)


def test_target_size_messages_name_the_output():
    with pytest.raises(Mat2GradError, match=r"outputs\{2\}.size"):
        matfile.samples_from_matlab(
            np.zeros((3, 5)), (2,), what="targets", size_names=["outputs{2}.size"]
        )


def test_rereading_an_unchanged_file_decodes_it_once_and_a_changed_file_again(tmp_path):
    path = tmp_path / "d.mat"
    matfile.write_mat(path, {"X": np.ones((2, 2))})
    first = matfile.read_mat(path)
    assert matfile.read_mat(path) is first
    matfile.write_mat(path, {"X": np.zeros((3, 3))})
    os.utime(path, ns=(1, 1))  # a different modification time, whatever the clock's resolution
    again = matfile.read_mat(path)
    assert again is not first and again["X"].shape == (3, 3)
