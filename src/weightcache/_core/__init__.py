"""The core protocol: fetch into staging, verify, publish, refs, gc; private to weightcache."""
