"""One module per `t2i-align` subcommand: argument parsing only, the work lives elsewhere."""
