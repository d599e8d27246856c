"""Other people's apps the benchmarks compare hfchat with, checked in as they ship, plus only
the changes that point them at a local server (each file says which)."""
