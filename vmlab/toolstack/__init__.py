"""What dom0 runs: the xm toolstack, config files, virt-install, save files, the CLI."""
