"""YAML text to plain data for every config the node reads, with errors that say what is wrong.

PyYAML's safe loader keeps the last of two equal keys without a word, so a config whose
``listen:`` appears twice runs on whichever came last; here a repeated key is an error naming
both lines.  Syntax errors name line, column and PyYAML's own description of the problem
("expected ',' or ']', but got '<stream end>'") instead of the line alone.
"""
from __future__ import annotations

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, refusing a mapping that names one key twice."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, MappingNode):
            seen: dict = {}
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:         # an unhashable key: the base class reports it
                    continue
                if first is not key_node:
                    raise ConstructorError(
                        None, None,
                        f"key {key!r} appears twice (first at line {first.start_mark.line + 1})",
                        key_node.start_mark)
        return super().construct_mapping(node, deep)


class YamlProblem(ValueError):
    """One line: where (``line N, column M``) and what."""


def load_yaml(text: str):
    """The document in ``text`` as plain data (None for an empty one)."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise YamlProblem(describe(exc)) from None


def describe(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    where = f"at line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = f"{problem} ({context})" if context and context not in problem else problem
    return where + " ".join(what.split())
