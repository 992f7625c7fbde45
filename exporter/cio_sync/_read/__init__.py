"""Reading a model: what differs between warehouses (dialects), its query and the named layout of
its rows' head (query, rows), and the snapshot its rows are streamed in (reader)."""
