"""Display formats (``FORMAT_MODULE_PATH``): the admin shows dates and times as ISO 8601, to the second."""
