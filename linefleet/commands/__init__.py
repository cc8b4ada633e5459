"""One module per subcommand; `linefleet.cli` discovers them."""
