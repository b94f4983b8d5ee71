"""The golden vectors (tests/vectors) replayed through Python: same results, same hashes."""
import glob
import json
import pathlib

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
    k = valori.EmbeddedKernel(dim=dim, metric=METRICS[script["metric"]])
    assert k.get_state_hash().hex() == script["initial_hash"]
    for i, step in enumerate(script["steps"]):
        op, expect = step["op"], step["expect"]
        error = ERRORS.get(expect.get("error")) if isinstance(expect, dict) else None
        if op == "search":
            q = wire.vector(step["query"], dim)
            if error:
                with pytest.raises(error):
                    k.search_raw(q, step["k"], step.get("tag"))
            else:
                got = k.search_raw(q, step["k"], step.get("tag"))
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
