"""README.md and docs/*.md as written: every ``dediffusion`` command line parses, every Python block runs.

Command lines come from ```bash blocks (``\\`` continuations joined; comments, pipes, ``&&``, env
prefixes, ``.venv/bin/dediffusion``, ``python -m dediffusion.cli`` and ``torchrun ... -m
dediffusion.cli`` understood; a ``# = COMMAND`` comment counts as a command line) and from inline
code spans that start with ``dediffusion`` (a bare ```dediffusion SUBCOMMAND``` only names the
subcommand). Each is parsed by the real ``build_parser()``, and its ``--set`` overrides are applied
to the config the subcommand starts from (``--preset`` included), so a renamed flag, subcommand,
preset or config key fails here. ```python blocks run in a scratch folder, each file's blocks in one
namespace, top to bottom (a block whose first line is ``# needs: real model`` is skipped: none is now),
and so do the ``python -c "..."`` one-liners of the bash blocks.
"""
from __future__ import annotations

import contextlib
import io
import pathlib
import re
import shlex

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
SHELL = ("bash", "sh", "shell", "console")
SKIP_MARK = "# needs: real model"
SEPARATORS = {"|", "||", "&&", ";", "&"}
REDIRECTS = {">", ">>", "<", "&>", ">&"}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)


def fenced_blocks(text: str) -> list[tuple[str, int, str]]:
    """(language, line number of the first code line, code) for every fenced block."""
    return [(m.group(1), text.count("\n", 0, m.start(2)) + 1, m.group(2)) for m in FENCE.finditer(text)]


def shell_lines(code: str, first: int = 1) -> list[tuple[int, str]]:
    """(line number, logical line) with backslash continuations joined; '# = CMD' comments become lines too."""
    out, buf, start = [], "", None
    for n, line in enumerate(code.splitlines(), first):
        start = n if start is None else start
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        out.append((start, buf))
        equals = re.search(r"\s#\s*=\s*(.+)$", buf)
        if equals:
            out.append((start, equals.group(1)))
        buf, start = "", None
    return out


def strip_comment(line: str) -> str:
    """``line`` up to a shell comment: a '#' that starts a word outside quotes (not the one in ``a#b``)."""
    quote, i = None, 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and quote != "'":
            i += 2
            continue
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
        i += 1
    return line


def simple_commands(line: str, piped: bool = False) -> list:
    """The words of each simple command on a shell line (comments, separators and redirections dropped);
    with ``piped``, (words, reads_a_pipe) pairs."""
    lex = shlex.shlex(strip_comment(line), posix=True, punctuation_chars=True)
    lex.whitespace_split, lex.commenters = True, ""
    commands, words, skip, after = [], [], False, None
    for tok in lex:
        if skip:
            skip = False
        elif tok in SEPARATORS:
            commands.append((words, after == "|"))
            words, after = [], tok
        elif tok in REDIRECTS:
            skip = True
        else:
            words.append(tok)
    commands.append((words, after == "|"))
    return [c if piped else c[0] for c in commands if c[0]]


def dediffusion_argv(words: list[str]) -> list[str] | None:
    """The arguments given to ``dediffusion`` by a simple command, or None if it runs something else."""
    while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):  # FOO=1 dediffusion ...
        words = words[1:]
    if not words:
        return None
    if pathlib.PurePosixPath(words[0]).name == "dediffusion":
        return words[1:]
    for i in range(len(words) - 1):  # python -m dediffusion.cli ..., torchrun [opts] -m dediffusion.cli ...
        if words[i] == "-m" and words[i + 1] == "dediffusion.cli":
            return words[i + 2:]
    return None


def commands_in(path: pathlib.Path) -> list[tuple[str, list[str], bool]]:
    """(where, argv, names_only) for every dediffusion command line in a Markdown file."""
    text = path.read_text(encoding="utf-8")
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    found = []
    for lang, first, code in fenced_blocks(text):
        if lang in SHELL:
            for n, line in shell_lines(code, first):
                for words in simple_commands(line):
                    argv = dediffusion_argv(words)
                    if argv is not None:
                        found.append((f"{name}:{n}: {line.strip()}", argv, False))
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)  # keep line numbers
    for m in re.finditer(r"(?<!`)`((?:[^`\n]|\n(?!\s*\n))+)`(?!`)", prose):  # may wrap, not across paragraphs
        span = " ".join(m.group(1).split())
        if not re.match(r"(\S*/)?dediffusion\s|.*-m dediffusion\.cli\s", span):
            continue
        n = prose.count("\n", 0, m.start()) + 1
        for words in simple_commands(span):
            argv = dediffusion_argv(words)
            if argv is not None:
                found.append((f"{name}:{n}: `{span}`", argv, len(argv) == 1))
    return found


def check_sets(args) -> None:
    """Apply ``--set`` to the config the subcommand starts from (its default or ``--preset``); ConfigError if bad."""
    from dediffusion.config import apply_overrides

    if args.command == "export":
        from dediffusion.train.export import INFERENCE_KEYS

        bad = [s for s in args.overrides if s.split("=", 1)[0].strip() not in INFERENCE_KEYS]
        assert not bad, f"export --set {bad[0]}: only {', '.join(INFERENCE_KEYS)}"
        return
    if args.command not in ("train", "pretrain-decoder", "train-probe"):
        return
    from dediffusion.train.fit_decoder import DecoderTrainConfig
    from dediffusion.train.fit_encoder import EncoderTrainConfig
    from dediffusion.train.fit_probe import ProbeTrainConfig

    default = {"train": EncoderTrainConfig, "pretrain-decoder": DecoderTrainConfig, "train-probe": ProbeTrainConfig}
    if getattr(args, "preset", None):
        from dediffusion.configs import preset

        base = preset(args.preset, args.command)
    else:
        base = default[args.command]()
    apply_overrides(base, args.set)


def command_problem(argv: list[str], names_only: bool = False) -> str | None:
    """Why ``dediffusion ARGV`` would not start (argparse's message, a bad --set), or None."""
    from dediffusion.cli.main import build_parser

    parser = build_parser()
    if names_only:
        subs = parser._subparsers._group_actions[0].choices
        return None if argv[0] in subs else f"no subcommand {argv[0]!r}"
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            args = parser.parse_args(argv)
    except SystemExit as e:
        return None if e.code == 0 else stderr.getvalue().strip().splitlines()[-1]  # --help exits 0
    try:
        check_sets(args)
    except (AssertionError, ValueError) as e:  # ConfigError is a ValueError; so is an unknown preset
        return str(e)
    return None


def python_one_liners(path: pathlib.Path) -> list[tuple[str, str]]:
    """(where, code) of ``python -c CODE`` in the shell blocks."""
    out = []
    for lang, first, code in fenced_blocks(path.read_text(encoding="utf-8")):
        if lang in SHELL:
            for n, line in shell_lines(code, first):
                for words, reads_a_pipe in simple_commands(line, piped=True):
                    if re.fullmatch(r"python3?", pathlib.PurePosixPath(words[0]).name) and len(words) > 2 \
                            and words[1] == "-c" and not reads_a_pipe:  # not `curl ... | python -c ...`
                        out.append((f"{path.name}:{n}", words[2]))
    return out


# -- the checker itself -------------------------------------------------------------------------------------

GOOD = """
```bash
# a comment with dediffusion encode --nope in it
DEDIFFUSION_THREADS=1 .venv/bin/dediffusion encode a.png b/ \\
    --format jsonl --tokens 8 > out.jsonl   # trailing comment
printf 'q\\n' | dediffusion chat scene.png && echo done
dediffusion serve --llm-url "http://h/#v1" --llm-model 'a # b'  # comment
make serve   # = .venv/bin/dediffusion serve --port 8000
torchrun --standalone --nproc-per-node 2 -m dediffusion.cli train --out runs/x --set steps=3
python -c "print(1)"
curl -s http://localhost:8000/x | python3 -c "import sys; sys.stdin.read()"
```
Inline: `dediffusion train-probe --out runs/probe
--set steps=2`, `dediffusion eval`, and
`dediffusion.bulk.stream.read_jsonl` (a module, not a command).
```json
{"dediffusion": "not a command"}
```
"""


def test_the_checker_finds_every_form_and_passes_good_lines(tmp_path):
    doc = tmp_path / "good.md"
    doc.write_text(GOOD, encoding="utf-8")
    found = commands_in(doc)
    assert [argv for _, argv, _ in found] == [
        ["encode", "a.png", "b/", "--format", "jsonl", "--tokens", "8"],
        ["chat", "scene.png"],
        ["serve", "--llm-url", "http://h/#v1", "--llm-model", "a # b"],
        ["serve", "--port", "8000"],
        ["train", "--out", "runs/x", "--set", "steps=3"],
        ["train-probe", "--out", "runs/probe", "--set", "steps=2"],
        ["eval"],
    ]
    assert found[0][0].startswith("good.md:4: ") and found[-1][2]  # line numbers; a bare subcommand is a name
    assert [command_problem(argv, only) for _, argv, only in found] == [None] * 7
    assert python_one_liners(doc) == [("good.md:10", "print(1)")]


@pytest.mark.parametrize("line, why", [
    ("dediffusion encode x.png --tokens many", "invalid int value"),
    ("dediffusion encode --format jsonl", "required"),
    ("dediffusion nope x", "invalid choice"),
    (".venv/bin/dediffusion decode 'a red circle' --cfgs 3 -o x.png", "unrecognized arguments"),
    ("torchrun --nproc-per-node 2 -m dediffusion.cli train --set steps=3", "--out"),
    ("dediffusion train --out r --set nope=1", "unknown key 'nope'"),
    ("dediffusion train --out r --set lr=fast", "lr"),
    ("dediffusion pretrain-decoder --out r --set model.encoder.width=8", "unknown key"),
    ("dediffusion train --out r --preset no_such_preset", "unknown preset"),
    ("dediffusion export encoder a b --set encoder.width=8", "only head.inference"),
])
def test_the_checker_fails_a_bad_command_line(tmp_path, line, why):
    doc = tmp_path / "bad.md"
    doc.write_text(f"```bash\n{line}\n```\n", encoding="utf-8")
    [(where, argv, only)] = commands_in(doc)
    problem = command_problem(argv, only)
    assert problem and why in problem, (where, problem)
    doc.write_text(f"Run `{line}`.\n", encoding="utf-8")  # the same line inline
    [(_, argv, only)] = commands_in(doc)
    assert command_problem(argv, only)


# -- the documents -----------------------------------------------------------------------------------------

def test_every_documented_command_line_parses():
    found = [c for doc in DOCS for c in commands_in(doc)]
    assert len(found) > 30  # README and docs hold dozens: the extraction did not silently stop
    assert any(where.startswith("docs/") for where, _, _ in found)
    problems = [f"{where}\n    -> {problem}" for where, argv, only in found
                if (problem := command_problem(argv, only))]
    assert not problems, "\n".join(problems)


def test_every_documented_subcommand_is_one_the_cli_has():
    from dediffusion.cli.main import build_parser

    subs = set(build_parser()._subparsers._group_actions[0].choices)
    used = {argv[0] for doc in DOCS for _, argv, _ in commands_in(doc) if argv}
    assert used <= subs, used - subs


def _python_blocks(path):
    return [(first, code) for lang, first, code in fenced_blocks(path.read_text(encoding="utf-8")) if lang == "python"]


def test_every_python_block_and_one_liner_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # blocks may write files
    skipped, ran, namespaces = [], [], {}
    for doc in DOCS:
        namespace: dict = {"__name__": "__doc_snippet__"}
        for first, code in _python_blocks(doc):
            where = f"{doc.name}:{first}"
            if code.lstrip().startswith(SKIP_MARK):
                skipped.append(where)
                continue
            exec(compile(code, where, "exec"), namespace)  # noqa: S102 - our own documentation
            ran.append(where)
        namespaces[doc.name] = namespace
        for where, code in python_one_liners(doc):
            exec(compile(code, where, "exec"), {"__name__": "__doc_snippet__"})  # noqa: S102
            ran.append(where)
    if skipped:
        print(f"skipped, marked '{SKIP_MARK}': {', '.join(skipped)}")
    assert any(w.startswith("README.md") for w in ran)
    out = capsys.readouterr().out
    readme = namespaces["README.md"]  # the "From Python" snippet: what its comments promise
    assert "De-Diffusion:" in out
    assert readme["recon"].shape == (1, 3, 16, 16) and 0 <= readme["recon"].min() <= readme["recon"].max() <= 1
    assert readme["loss"].item() > 0
    assert (tmp_path / "scene.png").is_file()  # the one-liner that makes the scene the ask examples read
