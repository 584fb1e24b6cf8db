"""Configurations shipped with rvcd (package data: `rvcd.daemon.config_paths`)."""
