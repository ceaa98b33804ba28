"""Every `yoloab` command the README and the docs pages show is one the command line reads.

Each command in a fenced shell block, and each inline code span that is a whole command (more than a verb, and no placeholder such as
`PATH`, `[--opt]`, `a|b` or `...`), is parsed by the real click command tree of `yoloab.cli.app`: the verb must
exist, and every option must exist and take a value of its type. A renamed or removed flag fails here with the page
and the command. Running them is the job of `docs/run-commands.sh`, which executes the fenced commands of the README
and regenerates their output; parsing them is cheap enough for every test run.
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
FENCE = re.compile(r"^[ \t]*```(?:bash|sh|shell|console)?[ \t]*$\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)
SPAN = re.compile(r"`([^`]+)`")  # paired left to right, as Markdown pairs them
PLACEHOLDER = re.compile(r"\.\.\.|[\[\]|<>{}()]|(?:^|\s)[A-Z][A-Z0-9_]{1,}(?:,|\s|$)")


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


def _commands() -> list[tuple[str, str]]:
    found: dict[tuple[str, str], None] = {}
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        name = page.relative_to(ROOT).as_posix()
        for block in FENCE.findall(text):
            for command in _segments(block):
                if _yoloab_args(command) is not None:
                    found[(name, command)] = None
        for span in SPAN.findall(FENCE.sub("", text)):
            span = " ".join(span.split())
            # a verb named in prose (`yoloab sweep`) is not a command line; a synopsis has placeholders
            if span.startswith("yoloab ") and len(span.split()) > 2 and not PLACEHOLDER.search(span[7:]):
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
