"""The README's Python examples run as written."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if README.exists() else []


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_example_runs(i):
    if "..." in BLOCKS[i]:
        pytest.skip("a sketch with elisions, not a runnable example")
    ns = {}
    for block in BLOCKS[:i + 1]:  # later examples reuse earlier names
        if "..." not in block:
            exec(compile(block, f"README.md block {i}", "exec"), ns)
