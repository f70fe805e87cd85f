"""environment.yml builds what `make setup` builds."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_has_the_makefiles_torch_pin_extras_and_set_up_steps():
    makefile, conda = (ROOT / "Makefile").read_text(), (ROOT / "environment.yml").read_text()
    torch = re.search(r"^TORCH\s*\?=\s*(.+)$", makefile, re.MULTILINE).group(1).split()
    extras = re.search(r'-e "(\.\[[a-z,]+\])"', makefile).group(1)
    pip = [line.strip().removeprefix("- ") for line in conda.split("- pip:")[1].splitlines()]
    assert [line for line in pip if line] == [*torch, f"-e {extras}"]
    for step in ("hierstudy wordnet --install", "ipykernel install --sys-prefix --name hierstudy"):
        assert step in makefile and step in conda


def test_one_opencv_wheel():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"opencv-python-headless' in pyproject and '"opencv-python>' not in pyproject
