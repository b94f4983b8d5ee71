"""The README's Python blocks run exactly as written (the HTTP one against a test server)."""
import os
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_quick_start(tmp_path, node):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no ```python block"
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for block in blocks:
            # The server example talks to this session's valori-node instead of port 3000.
            block = block.replace("http://127.0.0.1:3000", node.url)
            exec(compile(block, str(README), "exec"), {})
    finally:
        os.chdir(cwd)
