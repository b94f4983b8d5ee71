"""valori.errors against the one error table (valori_kernel::ErrorCode, via
valori._native.error_codes()), and the mapping of refused arguments to valori errors."""

import subprocess
import sys

import pytest

import valori
from valori import _native, errors


def _classes():
    return {c.code: c for c in vars(errors).values()
            if isinstance(c, type) and issubclass(c, valori.Error) and c is not valori.Error}


def test_every_code_of_the_table_has_a_class_and_no_class_is_stale():
    table = _native.error_codes()
    assert [v for v, _, _ in table] == list(range(1, len(table) + 1))  # dense, numeric order
    names = [n for _, n, _ in table]
    assert len(set(names)) == len(names)
    assert all(d for _, _, d in table)
    assert set(names) == set(_classes())
    for name in names:
        cls = errors.error_class(name)
        assert issubclass(cls, valori.Error)
        assert cls.code == name
        assert errors.error_class(cls.code) is cls
        assert getattr(valori, cls.__name__) is cls  # exported from the package


def test_classes_keep_their_names_and_python_bases():
    assert errors.error_class("Io") is valori.ValoriIOError
    assert issubclass(valori.ValoriIOError, OSError)
    assert issubclass(valori.InvalidInputError, ValueError)
    assert issubclass(valori.DimensionError, ValueError)
    assert issubclass(valori.NotFoundError, LookupError)
    assert errors.error_class("Internal") is valori.InternalError


def test_unknown_code_name_is_refused():
    with pytest.raises(LookupError, match="NoSuchCode"):
        errors.error_class("NoSuchCode")


def test_planted_code_without_class_fails_the_check(monkeypatch):
    table = _native.error_codes()
    errors.check_table(table)  # the real table passes
    monkeypatch.setattr(_native, "error_codes", lambda: table + [(len(table) + 1, "Brandnew", "a new code")])
    with pytest.raises(ImportError, match="Brandnew"):
        errors.check_table(_native.error_codes())


def test_planted_code_without_class_fails_the_import():
    # A fresh interpreter: the native table gains a code, then the package is imported again.
    script = (
        "import sys, valori, valori._native as n\n"
        "table = n.error_codes()\n"
        "n.error_codes = lambda: table + [(99, 'Brandnew', 'a new code')]\n"
        "for name in [m for m in sys.modules if m == 'valori' or m.startswith('valori.')]:\n"
        "    if name != 'valori._native':\n"
        "        del sys.modules[name]\n"
        "try:\n"
        "    import valori\n"
        "except ImportError as e:\n"
        "    print('ImportError:', e)\n"
        "else:\n"
        "    print('imported')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.startswith("ImportError:") and "Brandnew" in out, out


def test_native_errors_are_raised_through_error_class(monkeypatch):
    asked = []
    real = errors.error_class

    def spy(code):
        asked.append(code)
        return real(code)

    monkeypatch.setattr(errors, "error_class", spy)
    k = valori.EmbeddedKernel(dim=2)
    with pytest.raises(valori.NotFoundError):
        k.delete(5)
    with pytest.raises(valori.DimensionError):
        k._n.insert(b"\0" * 12, "f32")  # 3 components into a 2-dimensional store
    assert asked == ["NotFound", "Dimension"]


def test_a_failing_lookup_keeps_the_message(monkeypatch):
    def broken(code):
        raise LookupError("planted")

    monkeypatch.setattr(errors, "error_class", broken)
    with pytest.raises(RuntimeError, match=r"record 5 does not exist \(NotFound\).*planted"):
        valori.EmbeddedKernel(dim=2).delete(5)


@pytest.mark.parametrize("make", [
    lambda tmp: valori.EmbeddedKernel(dim=2, metric="l3"),
    lambda tmp: valori.Database(tmp / "db", dim=2, metric="l3"),
])
def test_unknown_metric_is_invalid_input(tmp_path, make):
    with pytest.raises(valori.InvalidInputError) as e:
        make(tmp_path)
    assert str(e.value) == "unknown metric 'l3': use 'l2', 'ip' or 'cosine'"


def test_unknown_durability_and_direction_are_invalid_input(tmp_path):
    with pytest.raises(valori.InvalidInputError) as e:
        valori.Database(tmp_path / "db", dim=2, durability="sometimes")
    assert str(e.value) == "unknown durability 'sometimes': use 'fsync', 'group' or 'none'"
    k = valori.EmbeddedKernel(dim=2)
    n = k.create_node(1)
    with pytest.raises(valori.InvalidInputError) as e:
        k.neighbors(n, "sideways")
    assert str(e.value) == "unknown direction 'sideways': use 'out', 'in' or 'both'"


def test_missing_database_is_not_found(tmp_path):
    with pytest.raises(valori.NotFoundError, match="no database"):
        valori.Database(tmp_path / "nothing-here")  # no dimension to create it
    with pytest.raises(valori.NotFoundError, match="no database"):
        valori.Database(tmp_path / "nothing-either", dim=2, create=False)
