"""Every `yoloab` command the README and the docs pages show is one the command line reads.

Each command in a fenced shell block, and each inline code span that is a whole command (more than a verb or an
option's name, and no placeholder such as `PATH`, `[--opt]`, `a|b` or `...`), is parsed by the real click command
tree of `yoloab.cli.app`: the verb must exist, and every option must exist and take a value of its type. A renamed
or removed flag fails here with the page and the command. Running them is the job of `docs/run-commands.sh`, which
executes the fenced commands of the README and regenerates their output; parsing them is cheap enough for every
test run.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from yoloab.cli.app import UsageError, app

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = {"", "bash", "sh", "shell", "console"}
SPAN = re.compile(r"`([^`]+)`")  # paired left to right, as Markdown pairs them
PLACEHOLDER = re.compile(r"\.\.\.|[\[\]|<>{}()]|(?:^|\s)[A-Z][A-Z0-9_]*(?:,|\s|$)")


def _split_fences(text: str) -> tuple[list[tuple[str, str]], str]:
    """The fenced blocks of a page as (language, body), paired top to bottom, and the page's text outside them."""
    blocks, prose, body, lang = [], [], None, ""
    for line in text.splitlines():
        fence = re.match(r"^[ \t]*```(\w*)", line)
        if fence and body is None:
            body, lang = [], fence.group(1)
        elif fence and body is not None:
            blocks.append((lang, "\n".join(body)))
            body = None
        elif body is not None:
            body.append(line)
        else:
            prose.append(line)
    return blocks, "\n".join(prose)


def _segments(block: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments dropped, `&&` and `;` chains split."""
    text = re.sub(r"\\\n\s*", " ", block)
    out = []
    for line in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        out.extend(part.strip() for part in re.split(r"&&|;|\|\|", line) if part.strip())
    return out


def _yoloab_args(command: str) -> list[str] | None:
    """The arguments after `yoloab` (or a path ending in `/yoloab`), or None for another program."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    for i, word in enumerate(words):
        if word == "yoloab" or word.endswith("/yoloab"):
            return words[i + 1 :]
        if "=" not in word:  # an environment assignment may come first; any other program ends the search
            return None
    return None


def _names_an_option(args: list[str]) -> bool:
    """Whether a prose span such as `yoloab report --out` names an option rather than giving a command line."""
    root = typer.main.get_command(app)
    verb = root.commands.get(args[0]) if hasattr(root, "commands") else None
    if verb is None or not args[-1].startswith("--"):
        return False
    option = next((p for p in verb.params if args[-1] in getattr(p, "opts", [])), None)
    return option is not None and not getattr(option, "is_flag", False)


def _commands() -> list[tuple[str, str]]:
    found: dict[tuple[str, str], None] = {}
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        name = page.relative_to(ROOT).as_posix()
        blocks, prose = _split_fences(text)
        for lang, block in blocks:
            for command in _segments(block) if lang in SHELLS else []:
                if _yoloab_args(command) is not None:
                    found[(name, command)] = None
        for span in SPAN.findall(prose):
            span = " ".join(span.split())
            # a verb named in prose (`yoloab sweep`) is not a command line; a synopsis has placeholders
            if (
                span.startswith("yoloab ")
                and len(span.split()) > 2
                and not PLACEHOLDER.search(span[7:])
                and not _names_an_option(span.split()[1:])
            ):
                found[(name, span)] = None
    return list(found)


COMMANDS = _commands()


def test_the_pages_show_commands():
    pages = {page for page, _ in COMMANDS}
    assert "README.md" in pages and len(COMMANDS) >= 10, COMMANDS


@pytest.mark.parametrize(("page", "command"), COMMANDS, ids=[f"{p}:{c[:60]}" for p, c in COMMANDS])
def test_a_documented_command_parses(page, command):
    args = _yoloab_args(command)
    assert args is not None
    root = typer.main.get_command(app)
    try:
        ctx = root.make_context("yoloab", list(args), resilient_parsing=False)
        if args and not args[0].startswith("-"):
            protected = getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", None) or []
            name, *rest = [*protected, *ctx.args]
            sub = root.get_command(ctx, name)
            assert sub is not None, f"{page}: unknown verb '{name}' in `{command}`"
            sub.make_context(name, rest, parent=ctx)
    except typer.Exit as stop:  # the root group turns a usage error into one line and exit code 2
        assert stop.exit_code == 0, f"{page}: `{command}` does not parse"
    except UsageError as err:
        pytest.fail(f"{page}: `{command}`: {err.format_message()}")


def test_the_readme_script_runs_the_readmes_main_job():
    """`docs/run-readme.sh` runs exactly the yoloab commands of the README's first code block, in order."""
    blocks, _ = _split_fences((ROOT / "README.md").read_text(encoding="utf-8"))
    main_job = next(block for lang, block in blocks if lang in SHELLS)
    readme = [" ".join(["yoloab", *_yoloab_args(c)]) for c in _segments(main_job) if _yoloab_args(c) is not None]
    script = (ROOT / "docs" / "run-readme.sh").read_text(encoding="utf-8")
    array = script[script.index("commands=(") : script.index("\n)", script.index("commands=("))]
    assert re.findall(r'^\s+"(yoloab [^"]+)"$', array, re.M) == readme
