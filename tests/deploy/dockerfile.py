"""A Dockerfile read as stages of instructions, enough to check images statically.

Contract: :func:`parse` joins continuation lines, drops comments and parser
directives, and splits the file into :class:`Stage` objects (one per ``FROM``),
each holding its ``(INSTRUCTION, arguments)`` pairs in order. Heredocs and
``ONBUILD`` are not supported: the project's Dockerfiles use neither.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_DIRECTIVE = re.compile(r"^#\s*[a-z]+\s*=", re.IGNORECASE)


@dataclass
class Stage:
    """One build stage: its base image, its name, and its instructions after FROM."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        """Arguments of every ``instruction`` (upper case) in this stage, in order."""
        return [a for i, a in self.instructions if i == instruction]

    def env(self) -> dict[str, str]:
        """Variables set by this stage's ENV instructions (``KEY=VALUE`` form)."""
        out: dict[str, str] = {}
        for line in self.args("ENV"):
            for token in shlex.split(line):
                key, sep, value = token.partition("=")
                if sep:
                    out[key] = value
        return out


@dataclass
class Dockerfile:
    """A parsed Dockerfile: global ARGs (before the first FROM) and its stages."""

    path: Path
    args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        """The stage the image is built from when no target is given."""
        return self.stages[-1]

    def resolve(self, text: str) -> str:
        """``text`` with ``${ARG}`` references to global ARG defaults substituted."""
        return re.sub(r"\$\{(\w+)\}", lambda m: self.args.get(m.group(1), m.group(0)), text)


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and pending):
            continue  # comments (and blank lines) inside a continuation are skipped
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        line = (pending + stripped).strip()
        pending = ""
        if line:
            lines.append(line)
    if pending.strip():
        lines.append(pending.strip())
    return lines


def parse(path: Path) -> Dockerfile:
    """The stages and global ARGs of the Dockerfile at ``path``."""
    text = "\n".join(
        line for line in path.read_text(encoding="utf-8").splitlines() if not _DIRECTIVE.match(line)
    )
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(text):
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        rest = rest.strip()
        if instruction == "FROM":
            words = rest.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages:
            if instruction == "ARG":
                key, _, default = rest.partition("=")
                global_args[key] = default
        else:
            stages[-1].instructions.append((instruction, rest))
    return Dockerfile(path=path, args=global_args, stages=stages)
