"""Mitogen's linear strategy, loaded from the installed `mitogen` package.

ansible.cfg's strategy_plugins names this directory, so the configuration does not depend on
where the virtualenv is.
"""

from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

__all__ = ["StrategyModule"]
