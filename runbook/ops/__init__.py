"""Scheduled operations: pure computations over typed records (no I/O here).

``health`` (daily pipeline health and DORA), ``scan_review`` (weekly findings diff against
SLAs), ``cleanup`` (registry cleanup plan), ``rotation`` (secret rotation state machine);
``policy`` holds their thresholds with the runbook's defaults.
"""
