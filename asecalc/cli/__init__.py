"""The ``eformer`` command line (one small module per subcommand, ASE style)."""
