"""The start-up check of BasicSR's options: every ``network_*`` section against the arch it names."""

from san_plugin.utils.network_options import check_network_opt


def check_network_options(opt, source):
    """Raise a :class:`~san_plugin.utils.network_options.NetworkOptionError` naming the file and the key if a
    ``network_*`` section cannot build its arch.

    ``build_network`` passes every key but ``type`` to the arch constructor, so a misspelt or unknown key would end
    as a bare ``TypeError: __init__() got an unexpected keyword argument`` that names neither the section nor the
    file. The rules are :func:`~san_plugin.utils.network_options.check_network_opt`'s, with BasicSR's behaviour kept
    for what the plugin cannot know: a type that is not registered (yet) passes, and a section that is not a mapping
    is left to the model that reads it.

    Args:
        opt (dict): Parsed options.
        source (str): The options file, named in messages.
    """
    for section, network_opt in opt.items():
        if section.startswith('network_') and isinstance(network_opt, dict):
            check_network_opt(network_opt, f'{source}: {section}', allow_unregistered=True)
