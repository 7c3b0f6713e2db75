"""One module per subcommand; each defines ``main(flags) -> int``."""
