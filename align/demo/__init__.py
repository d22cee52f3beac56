"""The demo: the whole loop on the shapes world as stages of the project's own commands."""
