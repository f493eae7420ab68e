"""Bounded YAML reading for every file the robot side loads (model cards, parameter files).

`yaml.safe_load` alone still expands aliases and recurses without limit: a 1 KB "billion
laughs" card took 14 s and 845 MB before a MemoryError, and 100k-deep nesting ended in a bare
RecursionError. Here the file size is capped before reading, aliases are refused and the
nesting depth and node count are capped while the parser composes, before anything is expanded.
"""
from pathlib import Path

import yaml

MAX_BYTES = 1 << 20      # a model card is a few KB; 1 MiB leaves room for long provenance
MAX_DEPTH = 32           # cards nest about 5 deep
MAX_NODES = 100_000      # scalars + collections, counted as the parser composes them


class YamlError(ValueError):
    """The file cannot be read as bounded YAML; the message names the file and the reason."""


class _Refused(yaml.YAMLError):
    """Well-formed YAML that this loader will not build (alias, too deep, too many nodes)."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and stops at MAX_DEPTH nesting or MAX_NODES nodes."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(f'aliases (*{event.anchor}) are not allowed, line '
                                 f'{event.start_mark.line + 1}')
        self._depth += 1
        self._nodes += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f'nested deeper than {MAX_DEPTH} levels, line '
                                 f'{self.peek_event().start_mark.line + 1}')
        if self._nodes > MAX_NODES:
            raise _Refused(f'more than {MAX_NODES} nodes')
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml(path: str | Path, max_bytes: int = MAX_BYTES):
    """The parsed content of `path`, or YamlError('<path>: <reason>') in one line."""
    path = Path(path)
    try:
        with open(path, 'rb') as f:
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise YamlError(f'{path}: cannot read ({exc.strerror})') from exc
    if len(raw) > max_bytes:
        raise YamlError(f'{path}: larger than {max_bytes} bytes')
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise YamlError(f'{path}: not UTF-8 text ({exc.reason} at byte {exc.start})') from exc
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except _Refused as exc:
        raise YamlError(f'{path}: refused: {exc}') from exc
    except yaml.YAMLError as exc:
        reason = ' '.join(str(exc).split())  # one line: PyYAML messages span several
        raise YamlError(f'{path}: not valid YAML ({reason})') from exc
    except RecursionError as exc:  # a parser recursion deeper than Python's stack
        raise YamlError(f'{path}: nested too deeply') from exc
    finally:
        loader.dispose()
