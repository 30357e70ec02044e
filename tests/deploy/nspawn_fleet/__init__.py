"""Real systemd test hosts for the deployment tests: a cached Debian root, overlay per host,
systemd-nspawn on a private bridge, an apt proxy on the bridge. See `fleet.Fleet`."""
