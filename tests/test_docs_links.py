"""Every relative link and every ``#anchor`` in README.md and docs/ resolves: the file exists and has the heading."""

import re

import pytest
from conftest import REPO_ROOT

DOCUMENTS = [REPO_ROOT / 'README.md', *sorted((REPO_ROOT / 'docs').glob('*.md'))]
LINK = re.compile(r'(?<!!)\[[^\]]*\]\(([^)\s]+)\)')
FENCE = re.compile(r'^(```|~~~)')


def prose_lines(text):
    """(line number, line) of a Markdown text outside fenced code blocks."""
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.lstrip()):
            inside = not inside
        elif not inside:
            yield number, line


def slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped (but '-' and '_'), spaces as '-'."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def anchors(path):
    """The anchors of every heading of the Markdown file ``path``, numbered as GitHub numbers repeated ones."""
    seen = {}
    for _, line in prose_lines(path.read_text(encoding='utf-8')):
        match = re.match(r'^#{1,6}\s+(.*?)\s*#*$', line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            yield base if count == 0 else f'{base}-{count}'


def links(path):
    """(line number, target) of every link of the Markdown file ``path`` outside code."""
    for number, line in prose_lines(path.read_text(encoding='utf-8')):
        for target in LINK.findall(re.sub(r'`[^`]*`', '``', line)):  # not in inline code
            yield number, target


def broken_link(document, target):
    """None if ``target`` (a link in ``document``) resolves, else what is missing."""
    if re.match(r'^[a-z][a-z0-9+.-]*:', target):  # https:, mailto:: not checked here
        return None
    file_part, _, anchor = target.partition('#')
    linked = (document.parent / file_part).resolve() if file_part else document
    if not linked.exists():
        return f'{linked.relative_to(REPO_ROOT) if linked.is_relative_to(REPO_ROOT) else linked} does not exist'
    if anchor and (linked.suffix != '.md' or anchor not in set(anchors(linked))):
        return f'{linked.name} has no heading with the anchor #{anchor}'
    return None


@pytest.mark.parametrize('document', DOCUMENTS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_and_anchor_resolves(document):
    problems = [
        f'{document.relative_to(REPO_ROOT)}:{number}: link {target}: {missing}'
        for number, target in links(document)
        if (missing := broken_link(document, target))
    ]
    assert not problems, '\n'.join(problems)


def test_the_readme_is_short_and_lists_every_page():
    readme = (REPO_ROOT / 'README.md').read_text(encoding='utf-8')
    assert len(readme.splitlines()) <= 250
    linked = {target.partition('#')[0] for _, target in links(REPO_ROOT / 'README.md')}
    for page in DOCUMENTS[1:]:
        assert f'docs/{page.name}' in linked, f'README.md links no docs/{page.name}'


def test_a_broken_link_and_a_broken_anchor_are_named(tmp_path):
    (tmp_path / 'docs').mkdir()
    page = tmp_path / 'docs' / 'page.md'
    page.write_text('# Page\n\n## Two `words` here\n\n```\n[not a link](nowhere.md)\n```\n')
    assert broken_link(page, '#two-words-here') is None
    assert broken_link(page, 'page.md#page') is None
    assert broken_link(page, 'https://example.org/#x') is None
    assert broken_link(page, '#three') == 'page.md has no heading with the anchor #three'
    assert broken_link(page, 'missing.md').endswith('missing.md does not exist')
    assert list(links(page)) == []
