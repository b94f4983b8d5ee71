"""The golden vectors (tests/vectors) replayed through Python: same results, same hashes."""
import glob
import json
import pathlib

import numpy as np
import pytest

import gen_firmware_vectors as wire  # docs/FORMAT.md §5 encoder (scripts/)
import valori

VECTORS = pathlib.Path(__file__).resolve().parents[2] / "tests" / "vectors"
METRICS = {"L2": "l2", "InnerProduct": "ip", "Cosine": "cosine"}
ERRORS = {"InvalidInput": valori.InvalidInputError, "Dimension": valori.DimensionError,
          "Full": valori.FullError, "NotFound": valori.NotFoundError, "Exists": valori.ExistsError}
SCRIPTS = sorted(glob.glob(str(VECTORS / "[0-9]*.json")))


def test_there_are_golden_scripts():
    assert len(SCRIPTS) >= 6


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: pathlib.Path(p).stem)
def test_golden_script(path):
    script = json.load(open(path))
    dim = script["dim"]
    index = script.get("index")
    if index:
        k = valori.EmbeddedKernel(dim=dim, metric=METRICS[script["metric"]], index="hnsw", m=index["m"],
                                  ef_construction=index["ef_construction"])
    else:
        k = valori.EmbeddedKernel(dim=dim, metric=METRICS[script["metric"]])
    assert k.get_state_hash().hex() == script["initial_hash"]
    for i, step in enumerate(script["steps"]):
        op, expect = step["op"], step["expect"]
        error = ERRORS.get(expect.get("error")) if isinstance(expect, dict) else None
        if op in ("search", "search_approx"):
            q = wire.vector(step["query"], dim)
            how = {"exact": False, "ef": step["ef"]} if op == "search_approx" else {}
            if error:
                with pytest.raises(error):
                    k.search_raw(q, step["k"], step.get("tag"), **how)
            else:
                got = k.search_raw(q, step["k"], step.get("tag"), **how)
                assert got == [(h[0], int(h[1])) for h in expect["hits"]], f"step {i}"
        elif op == "traverse":
            if isinstance(expect, dict) and "hops" in expect and step.get("max", 64) >= len(expect["hops"]):
                got = k.traverse(step["start"], step["hops"], step["direction"], step.get("kind"))
                assert [list(h) for h in got] == expect["hops"], f"step {i}"
            elif error:
                with pytest.raises(error):
                    k.traverse(step["start"], step["hops"], step["direction"], step.get("kind"))
        elif op == "get":
            r = k.get(step["id"])
            if expect is None:
                assert r is None
            else:
                assert r.tag == expect["tag"] and r.metadata.hex() == expect["meta"]
                assert [round(x * 65536) for x in r.vector] == expect["vector"]
        else:
            command = wire.encode(step, dim)
            if error:
                with pytest.raises(error):
                    k.apply(command)
            else:
                k.apply(command)
            assert k.get_state_hash().hex() == step["hash"], f"step {i} ({op})"


def _conversions():
    table = json.load(open(VECTORS / "conversions.json"))["f32"]
    return [(np.array([int(e["bits"], 16)], dtype=np.uint32).view(np.float32)[0], e["expect"]) for e in table]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])  # float32 values widen to float64 exactly
@pytest.mark.parametrize("store", ["kernel", "database"])
def test_golden_conversions_through_every_input_path(tmp_path, store, dtype):
    table = _conversions()
    good = np.array([v for v, e in table if not isinstance(e, str)], dtype=dtype)
    raw = [e for _, e in table if not isinstance(e, str)]

    def make(dim, name):
        if store == "kernel":
            return valori.EmbeddedKernel(dim=dim)
        return valori.Database(tmp_path / name, dim=dim, durability="none")

    s = make(len(good), "good")
    s.insert(good)
    s.insert_batch(np.stack([good, good[::-1]]))
    assert [round(x * 65536) for x in s.get(0).vector] == raw
    assert [round(x * 65536) for x in s.get(1).vector] == raw
    assert [round(x * 65536) for x in s.get(2).vector] == raw[::-1]
    assert s.search(good, 1)[0] == (0, 0.0)
    one = make(1, "bad")
    if dtype is np.float64:  # converted directly: through float32 this would be the tie 0.5 -> 1
        one.insert(np.array([2.0**-17 - 2.0**-60]))
        assert one.get(0).vector.tolist() == [0.0]
        one.delete(0)
    for value, expect in table:
        if isinstance(expect, str):
            with pytest.raises(valori.errors.error_class(expect), match="component 0"):
                one.insert(np.array([value], dtype=dtype))
            with pytest.raises(valori.errors.error_class(expect), match="component 0"):
                one.search(np.array([value], dtype=dtype), 1)
    with pytest.raises(valori.InvalidInputError, match="component 3"):  # indexes the flattened batch
        one.insert_batch(np.array([[0], [1], [2], [np.nan]], dtype=dtype))
    assert len(one) == 0
