"""Two-way key renaming between an authors' checkpoint format and ours, written once as a table of patterns.

A pattern is a dotted key whose ``{name}`` fields match an integer index (``{i}``, ``{j}``, ``{k}``) or a parameter
name (``{p}``: ``weight`` or ``bias``). The same table renames original keys to ours and back.
"""

import re

FIELD_PATTERNS = {'p': r'(?P<p>weight|bias)'}
INDEX_PATTERN = r'(?P<{}>\d+)'


def compile_pattern(pattern):
    """Turn ``'RG.{i}.conv.{p}'`` into an anchored regular expression with named groups."""
    parts = re.split(r'\{(\w+)\}', pattern)
    regex = ''.join(
        re.escape(part) if index % 2 == 0 else FIELD_PATTERNS.get(part, INDEX_PATTERN.format(part))
        for index, part in enumerate(parts)
    )
    return re.compile(f'^{regex}$')


class KeyRules:
    """A table of (original pattern, our pattern) pairs plus the original's never-used keys.

    Args:
        pairs (list[tuple[str, str]]): Original key pattern and our key pattern, with the same fields.
        unused (list[str]): Patterns of original keys that the original forward never uses.
    """

    def __init__(self, pairs, unused=()):
        self.pairs = [(compile_pattern(orig), orig, compile_pattern(ours), ours) for orig, ours in pairs]
        self.unused = [compile_pattern(pattern) for pattern in unused]

    def is_unused(self, original_key):
        return any(regex.match(original_key) for regex in self.unused)

    def to_ours(self, original_key):
        """Our name of an original key, or None if no rule matches."""
        return self._rename(original_key, from_original=True)

    def to_original(self, our_key):
        """The original name of one of our keys, or None if no rule matches."""
        return self._rename(our_key, from_original=False)

    def _rename(self, key, from_original):
        for orig_regex, orig, ours_regex, ours in self.pairs:
            match = (orig_regex if from_original else ours_regex).match(key)
            if match:
                return (ours if from_original else orig).format(**match.groupdict())
        return None

    def rename_to_ours(self, state_dict, what):
        """Rename every key of an original state dict; drop the never-used ones; refuse unknown ones.

        Args:
            state_dict (dict[str, Tensor]): Original-format weights.
            what (str): What is being converted, for messages.

        Returns:
            tuple[dict, list[str]]: The renamed state dict (same tensors, same order) and the dropped keys.
        """
        converted, dropped = {}, []
        for key, tensor in state_dict.items():
            our_key = self.to_ours(key)
            if our_key is not None:
                converted[our_key] = tensor
            elif self.is_unused(key):
                dropped.append(key)
            else:
                raise KeyError(f'{what}: unexpected key {key!r}')
        return converted, dropped
