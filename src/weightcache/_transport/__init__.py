"""Transport: HTTP downloads and ranges, hashing, filesystem helpers; private to weightcache."""
