"""The street's rules: entity states and SLAs, 12345 deadlines in working days, the names of
codes, personal numbers (validation, keyed hashes, masks), coordinates (WGS-84 / GCJ-02)."""
