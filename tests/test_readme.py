"""The README's example runs as written."""

import pathlib
import re

import torch

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = blocks[0]
    assert "create_loss" in example
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile(example, str(README), "exec"), namespace)
    assert torch.isfinite(namespace["loss"])
    assert namespace["counts"].tolist()[0] == 6000 and namespace["counts"].tolist()[-1] == 60
    # after DRW started, the loss holds effective-number weights, rarest class weighted most
    w = namespace["criterion"].weight
    assert w is not None and w.argmax().item() == 9
