"""Rebuild the original-format weights of a reference fixture (its own ``recipe.py`` for the full-size ones)."""

import importlib.util

from conftest import load_fixture, require_shared


def original_weights(fixture):
    """Return the authors'-format state dict of a loaded fixture, checked against its stored checksums."""
    state = fixture.get('state_dict')
    if state is None:
        spec = importlib.util.spec_from_file_location('fixture_recipe', require_shared('fixtures', 'recipe.py'))
        recipe = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(recipe)
        state = recipe.recipe_weights(fixture['entries'], fixture['seed'], fixture['gain'], fixture['fixed'])
    for key, (total, abs_total) in fixture['checksums'].items():
        tensor = state[key].double()
        assert abs(tensor.sum().item() - total) <= 1e-6 * max(1.0, abs(total)), key
        assert abs(tensor.abs().sum().item() - abs_total) <= 1e-6 * max(1.0, abs_total), key
    return state


def fixture_and_weights(name):
    fixture = load_fixture(name)
    return fixture, original_weights(fixture)
