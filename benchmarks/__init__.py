"""Side-by-side benchmark of policylang and other policy engines (see README.md)."""
