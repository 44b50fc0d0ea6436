"""The log sink (`[notify.console]`): one short line per alert in the daemon's log."""
