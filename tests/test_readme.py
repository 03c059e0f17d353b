"""The README's Python snippets run as written (against the shipped checkpoints)."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_python_snippets():
    assert python_blocks()


def test_readme_python_snippets_run(capsys):
    for block in python_blocks():
        namespace: dict = {}
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    out = capsys.readouterr().out
    assert "De-Diffusion:" in out
    assert namespace["recon"].shape == (1, 3, 16, 16)
    assert namespace["loss"].item() > 0


def test_readme_commands_exist():
    from dediffusion.cli.main import build_parser

    commands = set(re.findall(r"bin/dediffusion (\w[\w-]*)", README.read_text(encoding="utf-8")))
    known = set(build_parser()._subparsers._group_actions[0].choices)
    assert commands and commands <= known, commands - known
