from hotspots.cli import entry

entry()
