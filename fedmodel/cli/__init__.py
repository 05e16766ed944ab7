"""The fedmodel command: parse first, import heavy modules after."""
