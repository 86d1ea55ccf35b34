"""Pure domain: no I/O, no clock reads, Decimal money, New York trading dates."""
